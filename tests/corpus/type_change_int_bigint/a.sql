create table t (id serial primary key, n integer, s varchar(5));
