insert into t (n, s) values (1, 'x'), (2147483647, 'yy');
