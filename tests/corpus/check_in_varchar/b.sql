create table t (id int primary key, status varchar(10) check (status in ('a', 'b', 'c')),
                kind varchar(8) not null, note text check (note in ('n1', 'n2')));
alter table t add constraint kind_ck check (kind not in ('x', 'y'));
