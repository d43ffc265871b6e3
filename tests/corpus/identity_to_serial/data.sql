insert into t (v) values ('a'), ('b'), ('c');
