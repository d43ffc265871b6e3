create table t (id int, x varchar(5), y varchar(5), constraint t_ck check (x in ('a', 'b')));
