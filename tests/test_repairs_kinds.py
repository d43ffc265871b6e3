"""Each repair of deploy/differ/repairs, through the planner's proof on real databases.

Every case is planned both ways (A -> B and B -> A): the plan must be written and land
exactly on the other side's fingerprint.
"""

from __future__ import annotations

import pytest
from kinds_helpers import plan

T = "create table t (id int primary key, a text, b int);"
EVT = "create function evt() returns event_trigger language plpgsql as $$begin end$$;"
EQS = ("create function myeq(int, int) returns bool language sql immutable as 'select $1 = $2';"
       "create function myne(int, int) returns bool language sql immutable as 'select $1 <> $2';")
FDW = "create foreign data wrapper w; create server s foreign data wrapper w options (host 'a');"
RI_INDEX = "create unique index t_b on t (b); alter table t alter b set not null;"
PART = ("create table p (a int, b int) partition by range (a);"
        "create table p1 partition of p for values from (0) to (10);")

CASES = [
    ("domain from empty", "", "create domain pos as int default 1 not null "
     "constraint pos_check check (value > 0); create table u (x pos);"),
    ("domain changes", "create domain d as int check (value > 0); create table u (x d);",
     "create domain d as int default 3 not null check (value > 1); create table u (x d);"),
    ("varchar domain IN-list check changes (survives the parser round trip)",
     "create domain code as varchar(4) check (value in ('aa', 'bb')); create table u (c code);",
     "create domain code as varchar(4) check (value in ('aa', 'bb', 'cc'));"
     "create table u (c code);"),
    ("composite from empty (used by a table, uses a domain)", "",
     "create domain pos as int check (value > 0); create type c as (a int, b pos);"
     "create table u (x c);"),
    ("composite attributes", "create type c as (x int, y text);",
     "create type c as (x bigint, z int);"),
    ("composite attribute order (unused type)", "create type c as (a int, b text);",
     "create type c as (b text, a int);"),
    ("unique constraint -> unique index", T + "alter table t add constraint t_b_key unique (b);",
     T + "create unique index t_b_key on t (b);"),
    ("partition index attach", PART, PART + "create index p_b on p (b);"),
    ("storage parameters and toast options", T,
     T + "alter table t set (fillfactor = 70, autovacuum_enabled = false);"
     "alter table t set (toast.autovacuum_enabled = false);"),
    ("view options", T + "create view v as select id, b from t;",
     T + "create view v with (security_barrier = true, check_option = local) "
     "as select id, b from t; alter view v set (security_invoker = true);"),
    ("view options survive a re-created view", T + "create view v with (security_invoker = true)"
     " as select id from t;", T + "create view v with (security_invoker = true) as "
     "select id, b from t;"),
    ("force row level security", T,
     T + "alter table t enable row level security; alter table t force row level security;"),
    ("replica identity", T + RI_INDEX, T + RI_INDEX + "alter table t replica identity using "
     "index t_b;"),
    ("replica identity full", T, T + "alter table t replica identity full;"),
    ("column statistics, n_distinct, compression", T,
     T + "alter table t alter b set statistics 500; alter table t alter b set (n_distinct = -0.2);"
     "alter table t alter a set compression lz4;"),
    ("index column statistics", T + "create index t_sum on t ((id + b));",
     T + "create index t_sum on t ((id + b)); alter index t_sum alter column 1 set statistics "
     "300; create index t_prod on t ((id * b)); alter index t_prod alter column 1 set "
     "statistics 200;"),
    ("extended statistics", T, T + "create statistics t_ab (ndistinct, dependencies) on a, b "
     "from t; alter statistics t_ab set statistics 300; comment on statistics t_ab is 'why';"),
    ("extended statistics definition", T + "create statistics s1 (ndistinct) on a, b from t;",
     T + "create statistics s1 (mcv) on a, b from t;"),
    ("rules", T + "create table log (id int);",
     T + "create table log (id int); create rule t_log as on insert to t do also "
     "insert into log values (new.id);"),
    ("event trigger", EVT, EVT + "create event trigger et on ddl_command_start "
     "when tag in ('CREATE TABLE') execute function evt(); alter event trigger et disable;"),
    ("publication", T, T + "create publication pub for table t (id, b) where (b > 0) "
     "with (publish = 'insert, update'); create publication pall for all tables;"),
    ("collations in all forms, used by a new table", "",
     "create collation de (provider = icu, locale = 'de-DE', deterministic = false);"
     "create collation posix (provider = libc, lc_collate = 'C', lc_ctype = 'POSIX');"
     "create table u (a text collate de, b varchar(20) collate posix, c text collate \"C\");"),
    ("collation locale changed (unused)", "create collation de (provider = icu, locale = 'de');",
     "create collation de (provider = icu, locale = 'de-AT');"),
    ("text search from empty, used by a generated column", "",
     "create text search dictionary dct (template = simple, stopwords = english);"
     "create text search configuration cfg (copy = english);"
     "alter text search configuration cfg alter mapping for asciiword with dct, english_stem;"
     "create table d (t text, v tsvector generated always as (to_tsvector('cfg', t)) stored);"),
    ("text search changes", "create text search dictionary dct (template = simple, "
     "stopwords = english); create text search configuration cfg (copy = english);",
     "create text search dictionary dct (template = simple, accept = false);"
     "create text search configuration cfg (copy = english);"
     "alter text search configuration cfg alter mapping for asciiword with dct, english_stem;"
     "alter text search configuration cfg drop mapping for email;"),
    ("operators with commutator and negator", EQS,
     EQS + "create operator === (leftarg = int, rightarg = int, function = myeq, "
     "commutator = ===, negator = !==); create operator !== (leftarg = int, rightarg = int, "
     "function = myne, commutator = !==, negator = ===, restrict = neqsel, join = neqjoinsel);"),
    ("aggregate used by a view", T, T + "create aggregate agg(int) (sfunc = int4pl, stype = int, "
     "initcond = '0'); create view v as select agg(b) from t; comment on aggregate agg(int) "
     "is 'sum';"),
    ("aggregate definition", "create aggregate agg(int) (sfunc = int4pl, stype = int);",
     "create aggregate agg(int) (sfunc = int4mul, stype = int);"),
    ("publication members altered in place", T + "create table u (x int); create schema s;"
     "create publication p1 for table t; create publication p2 for table t (id) where "
     "(id > 1), u;", T + "create table u (x int); create schema s; create publication p1 for "
     "table t where (b > 0), tables in schema s; create publication p2;"),
    ("foreign tables from empty, read by a view", "", FDW + "create foreign table ft (x int "
     "options (column_name 'y') not null default 3, z text) server s options (table_name 'q');"
     "create view v as select x from ft;"),
    ("foreign data changes", FDW + "create foreign table ft (x int, gone int) server s "
     "options (a '1');", "create foreign data wrapper w options (debug 'true'); create server s "
     "version '2' foreign data wrapper w options (host 'b', port '5'); create foreign table ft "
     "(x bigint options (c 'd') not null, y text) server s options (b '2');"),
    ("range types from empty, used by a composite and a table", "",
     "create type fr as range (subtype = float8, subtype_diff = float8mi);"
     "create type c as (x fr); create table u (r fr, y c);"),
    ("range type changed (unused)", "create type fr as range (subtype = float8);",
     "create type fr as range (subtype = float8, subtype_diff = float8mi, "
     "multirange_type_name = frm);"),
    ("casts", "create type mood as enum ('a'); create function m(int) returns mood "
     "language sql immutable as $$select 'a'::mood$$;", "create type mood as enum ('a');"
     "create function m(int) returns mood language sql immutable as $$select 'a'::mood$$;"
     "create cast (text as mood) with inout as assignment; create cast (int as mood) with "
     "function m(int); comment on cast (int as mood) is 'why';"),
    ("conversions", "", "create default conversion conv for 'UTF8' to 'LATIN1' from "
     "utf8_to_iso8859_1; comment on conversion conv is 'c';"),
    ("publication options only", T + "create publication pub for table t;",
     T + "create publication pub for table t with (publish = 'insert');"),
]


@pytest.mark.parametrize(("name", "a_sql", "b_sql"), CASES, ids=[c[0] for c in CASES])
def test_repair_plans_and_lands_both_ways(pg, name, a_sql, b_sql):
    for source, target in ((a_sql, b_sql), (b_sql, a_sql)):
        sql, refusal, changed = plan(pg, source, target)
        assert changed, "the two schemas must differ in the fingerprint"
        assert refusal is None, refusal
        assert sql


def test_composite_type_in_use_is_refused_naming_the_type(pg):
    """PostgreSQL cannot add attributes to a type a column uses: refuse, never half-apply."""
    a = "create type c as (x int); create table u (v c);"
    b = "create type c as (x int, y int); create table u (v c);"
    sql, refusal, _changed = plan(pg, a, b)
    assert sql is None
    assert "public.c.y" in refusal
