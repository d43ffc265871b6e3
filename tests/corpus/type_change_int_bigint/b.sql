create table t (id serial primary key, n bigint, s varchar(20));
