create table t (id int primary key, new_name text);
