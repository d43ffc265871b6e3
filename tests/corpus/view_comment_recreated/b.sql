create table t (id int, x bigint);
create view v as select id, x from t;
create view w as select id from v;
comment on view v is 'the v';
comment on column v.id is 'v id';
comment on view w is 'the w';
