create domain code as varchar(4) check (value in ('aa', 'bb'));
create table t (c code, d code);
