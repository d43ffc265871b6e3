create table t (id serial primary key, name text);
