insert into t values (1, 'a', 'k', 'n1'), (2, 'b', 'z', null);
