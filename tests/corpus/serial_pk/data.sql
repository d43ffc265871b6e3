insert into t (name) values ('one'), ('two'), ('three');
