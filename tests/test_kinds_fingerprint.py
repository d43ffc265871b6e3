"""Nothing unfingerprinted is silently ignored: every object kind a user schema can hold
changes the fingerprint, and `plan` then either writes SQL that lands (proven) or refuses
with the residual naming the object."""

from __future__ import annotations

import pytest
from kinds_helpers import describe_sql, plan

T = "create table t (id int primary key, a text, b int);"
EVT = "create function evt() returns event_trigger language plpgsql as $$begin end$$;"
EQ = "create function myeq(int, int) returns bool language sql immutable as 'select $1 = $2';"

# (kind, schema A, schema B, key that must differ, does the differ generate the SQL?)
KINDS = [
    ("extended statistics", T, T + "create statistics st on a, b from t;",
     "statistics public.st", True),
    ("column SET STATISTICS", T, T + "alter table t alter b set statistics 200;",
     "column-option public.t.b", True),
    ("column n_distinct", T, T + "alter table t alter b set (n_distinct = 10);",
     "column-option public.t.b", True),
    ("column SET COMPRESSION", T, T + "alter table t alter a set compression lz4;",
     "column-option public.t.a", True),
    ("toast options", T, T + "alter table t set (toast.autovacuum_enabled = false);",
     "relation-option public.t", True),
    ("event trigger", EVT, EVT + "create event trigger et on ddl_command_start "
     "execute function evt();", "event-trigger et", True),
    ("publication", T, T + "create publication pub for table t;", "publication pub", True),
    ("text search configuration", "", "create text search configuration cfg (copy = simple);",
     "text-search-configuration public.cfg", True),
    ("text search dictionary", "", "create text search dictionary dct (template = simple);",
     "text-search-dictionary public.dct", True),
    ("operator", EQ, EQ + "create operator === (leftarg = int, rightarg = int, "
     "function = myeq);", "operator public.===(integer,integer)", True),
    ("operator family", "", "create operator family fam using btree;",
     "operator-family public.fam USING btree", False),
    ("cast", "create type mood as enum ('a');",
     "create type mood as enum ('a'); create cast (text as mood) with inout;",
     "cast (text AS public.mood)", True),
    ("conversion", "", "create conversion conv for 'UTF8' to 'LATIN1' from utf8_to_iso8859_1;",
     "conversion public.conv", True),
    ("ICU collation locale", "create collation c1 (provider = icu, locale = 'de-DE');",
     "create collation c1 (provider = icu, locale = 'fr-FR');", "collation public.c1", True),
    ("foreign data wrapper and server", "", "create foreign data wrapper w; "
     "create server s foreign data wrapper w options (host 'db');", "server s", True),
    ("access method", "", "create access method heap2 type table handler heap_tableam_handler;",
     "access-method heap2", False),
    ("language", "", "create language pl2 handler plpgsql_call_handler;", "language pl2", False),
    ("aggregate definition", "create aggregate agg(int) (sfunc = int4pl, stype = int);",
     "create aggregate agg(int) (sfunc = int4mul, stype = int);",
     "aggregate public.agg(integer)", True),
    ("range type options", "create type fr as range (subtype = float8);",
     "create type fr as range (subtype = float8, subtype_diff = float8mi);",
     "range-option public.fr", True),
    ("text search parser", "", "create text search parser prs (start = prsd_start, "
     "gettoken = prsd_nexttoken, end = prsd_end, lextypes = prsd_lextype);",
     "text-search-parser public.prs", False),
    ("text search template", "", "create text search template tpl (init = dsimple_init, "
     "lexize = dsimple_lexize);", "text-search-template public.tpl", False),
    ("base type", "", "create type mytext; create function mytext_in(cstring) returns mytext "
     "language internal immutable strict as 'textin'; create function mytext_out(mytext) "
     "returns cstring language internal immutable strict as 'textout';"
     "create type mytext (input = mytext_in, output = mytext_out, like = text);",
     "base-type public.mytext", False),
    ("event trigger enabled state", EVT + "create event trigger et on ddl_command_start "
     "execute function evt();", EVT + "create event trigger et on ddl_command_start "
     "execute function evt(); alter event trigger et enable always;", "event-trigger et", True),
    ("merged inherited column", "create table p (a int); create table c () inherits (p);",
     "create table p (a int); create table c (a int) inherits (p);",
     "column-option public.c.a", False),
]


@pytest.mark.parametrize(("kind", "a_sql", "b_sql", "key", "generated"), KINDS,
                         ids=[k[0] for k in KINDS])
def test_kind_is_fingerprinted_and_planned_or_refused(pg, kind, a_sql, b_sql, key, generated):
    sql, refusal, changed = plan(pg, a_sql, b_sql)
    assert any(c.split(" ", 1)[1].startswith(key.split(" ", 1)[1]) and c.startswith(
        key.split(" ", 1)[0]) for c in changed), changed
    if generated:
        assert refusal is None, refusal
        assert sql
    else:
        # Never a plan that ignores the object: refused, and the refusal names it.
        assert sql is None, sql
        assert key in refusal, refusal


def test_schemas_without_new_kinds_get_no_new_keys(pg):
    """The new kinds add keys only when used, so existing fingerprints (and plans) hold."""
    description = describe_sql(pg, T + "create view v as select id from t;"
                               "create index t_b on t (b); create sequence s;")
    kinds = {key.split(" ", 1)[0] for key in description}
    assert kinds <= {"schema", "extension", "relation", "column", "constraint", "index",
                     "sequence"}, kinds


def test_private_attribute_options_of_a_server_build_are_not_schema(pg):
    """A server build may keep private entries in pg_attribute.attoptions (a container image
    here wrote `pg_attver=…` on every column): only the options ALTER COLUMN … SET (…)
    accepts are part of the schema, else the same models differ between scratch providers."""
    plain = "create table t (id int, n int);"
    private = plain + (
        "update pg_attribute set attoptions = array['pg_attver=12345'] "
        "where attrelid = 't'::regclass and attnum > 0;"
    )
    assert describe_sql(pg, private) == describe_sql(pg, plain)
    sql, refusal, changed = plan(pg, private, plain)
    assert changed == [] and refusal is None and not (sql or "").strip()
    # n_distinct stays fingerprinted next to a private entry.
    counted = plain + "alter table t alter column n set (n_distinct = 5);"
    both = counted + (
        "update pg_attribute set attoptions = attoptions || 'pg_attver=1'::text "
        "where attrelid = 't'::regclass and attname = 'n';"
    )
    assert describe_sql(pg, both) == describe_sql(pg, counted) != describe_sql(pg, plain)
