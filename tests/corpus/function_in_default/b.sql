create function zz_next_code() returns text language sql as $$ select 'c' || 1 $$;
create function zz_valid(x text) returns boolean language sql immutable as $$ select x like 'c%' $$;
create table a_t (code text default zz_next_code() check (zz_valid(code)));
create view b_v as select code from a_t;
create view a_v as select code from b_v;
