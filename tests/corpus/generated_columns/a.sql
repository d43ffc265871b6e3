create table t (id int primary key, a int, b int generated always as (a * 2) stored);
