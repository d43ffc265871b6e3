create table t (id int primary key, a int, b int generated always as (a * 3) stored,
                c text generated always as ('#' || a::text) stored);
