insert into t (id, a) values (1, 1), (2, 5);
