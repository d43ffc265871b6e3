"""The hazard gate is default-deny and resolves names as the server does (issue 8); no
database needed. The same scenarios run against a real database in test_gate_apply.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.hazards import UNVERIFIED, classify, review
from deploy.plans import parse_plan, render_plan


def texts(sql: str) -> list[str]:
    return [h.text for h in classify(sql, use_squawk=False)]


def kinds(sql: str) -> set[str]:
    return {h.kind for h in classify(sql, use_squawk=False)}


# Each of these destroyed rows with exit 0 before: now each carries a hazard.
DATA_LOSS = {
    "delete in a CTE": ("WITH d AS (DELETE FROM users RETURNING 1) SELECT count(*) FROM d",
                        {"DELETES_DATA"}),
    "merge then delete": ("MERGE INTO users u USING (SELECT 1 AS id) s ON u.id = s.id "
                          "WHEN MATCHED THEN DELETE", {"DELETES_DATA", UNVERIFIED}),
    "update without where": ("UPDATE users SET email = NULL", {"DELETES_DATA"}),
    "create table as with a deleting CTE": (
        "CREATE TABLE keep AS WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d",
        {"DELETES_DATA", UNVERIFIED}),
    "drop in a DO block": ("DO $$ BEGIN DROP TABLE users CASCADE; END $$", {UNVERIFIED}),
    "EXECUTE in a DO block": ("DO $$ BEGIN EXECUTE 'DROP TABLE users'; END $$", {UNVERIFIED}),
    "function the plan creates and calls": (
        "CREATE FUNCTION wipe() RETURNS void LANGUAGE plpgsql AS "
        "$$ BEGIN DROP TABLE users CASCADE; END $$;\nSELECT wipe();", {UNVERIFIED}),
    "procedure the plan creates and calls": (
        "CREATE PROCEDURE wipe() LANGUAGE plpgsql AS "
        "$$ BEGIN DROP TABLE users CASCADE; END $$;\nCALL wipe();", {UNVERIFIED}),
    "function called from DDL": (
        "CREATE FUNCTION f(int) RETURNS bool LANGUAGE sql AS $$ SELECT true $$;\n"
        "ALTER TABLE users ADD CONSTRAINT c CHECK (f(id)) NOT VALID;", {UNVERIFIED}),
    "temp table shadows the real one": (
        "CREATE TEMP TABLE users (id int); DROP TABLE public.users CASCADE",
        {"DELETES_DATA", "BACKWARD_INCOMPATIBLE"}),
    "pg_temp-qualified table": ("CREATE TABLE pg_temp.users (id int); DROP TABLE public.users",
                                {"DELETES_DATA", "BACKWARD_INCOMPATIBLE"}),
    "temp view": ("CREATE TEMP VIEW users AS SELECT 1; DROP VIEW public.users CASCADE",
                  {"DELETES_DATA", "BACKWARD_INCOMPATIBLE"}),
    "implicitly temp view": (
        "CREATE TEMP TABLE t (id int); CREATE VIEW v AS SELECT * FROM t; "
        "DROP VIEW public.v CASCADE", {"DELETES_DATA", "BACKWARD_INCOMPATIBLE"}),
    "temp sequence": ("CREATE TEMP SEQUENCE s; DROP SEQUENCE public.s", {"DELETES_DATA"}),
    "search_path then drop type": (
        "SET search_path = scratch; CREATE TYPE card_status AS ENUM ('x');\n"
        "DROP TYPE public.card_status CASCADE;", {"DELETES_DATA"}),
    "search_path then drop column": (
        "SET search_path = scratch; CREATE TABLE flashcards (front text);\n"
        "ALTER TABLE public.flashcards DROP COLUMN front;",
        {"DELETES_DATA", "BACKWARD_INCOMPATIBLE"}),
    "search_path changed twice": (
        "SET search_path = scratch; CREATE TABLE flashcards (front text);\n"
        "SET search_path = public; ALTER TABLE flashcards DROP COLUMN front;",
        {"DELETES_DATA", "BACKWARD_INCOMPATIBLE"}),
    "search_path set by a function": (
        "SELECT set_config('search_path', 'scratch', false); CREATE TABLE users (id int);\n"
        "SELECT set_config('search_path', 'public', false); DROP TABLE users;",
        {"DELETES_DATA", "BACKWARD_INCOMPATIBLE", UNVERIFIED}),
}


@pytest.mark.parametrize("name", DATA_LOSS)
def test_data_loss_scenarios_carry_hazards(name: str) -> None:
    sql, expected = DATA_LOSS[name]
    assert kinds(sql) == expected, texts(sql)


UNMODELLED = [
    "INSERT INTO users (id) VALUES (1)",
    "UPDATE users SET xp = 0 WHERE xp IS NULL",
    "SELECT 1 INTO keep",
    "COPY users TO PROGRAM 'cat > /tmp/x'",
    "LOCK TABLE users",
    "CREATE RULE r AS ON INSERT TO users DO INSTEAD NOTHING",
    "EXPLAIN ANALYZE DELETE FROM users",
    "REFRESH MATERIALIZED VIEW totals",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
    "ALTER EXTENSION pg_trgm UPDATE",
    "CREATE SCHEMA s CREATE TABLE t (id int)",
    "CREATE OPERATOR @@@ (function = wipe, leftarg = int, rightarg = int)",
    "CREATE CAST (int AS text) WITH FUNCTION wipe(int) AS IMPLICIT",
    "ALTER TABLE users DISABLE TRIGGER ALL",
    "ALTER TABLE users ENABLE REPLICA TRIGGER touch",
    "ALTER TABLE measurements DETACH PARTITION m2020",
    "ALTER TABLE users NO INHERIT people",
    "ALTER TABLE users ALTER COLUMN id DROP IDENTITY",
]


@pytest.mark.parametrize("sql", UNMODELLED)
def test_what_the_rules_do_not_model_is_unverified(sql: str) -> None:
    assert UNVERIFIED in kinds(sql), texts(sql)


def test_temp_objects_are_exempt_when_the_server_resolves_to_them() -> None:
    assert texts("CREATE TEMP TABLE users (id int); DROP TABLE users CASCADE") == []
    assert texts("CREATE TEMP TABLE t (id int); INSERT INTO t VALUES (1); DROP TABLE t") == []


def test_unverified_text_names_the_statement_and_tells_long_ones_apart() -> None:
    body = "x" * 100
    one = texts(f"DO $$ BEGIN RAISE NOTICE '{body}1'; END $$")
    two = texts(f"DO $$ BEGIN RAISE NOTICE '{body}2'; END $$")
    assert one[0].startswith("UNVERIFIED DO block: DO $$ BEGIN RAISE NOTICE")
    assert "[sha256:" in one[0] and one != two
    assert len(one[0]) < 140 and "\n" not in one[0]


def test_plain_ddl_migra_writes_stays_quiet() -> None:
    sql = (
        'set check_function_bodies = off;\n'
        'create table "public"."t" ("id" uuid not null default uuid_generate_v4());\n'
        'CREATE OR REPLACE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql '
        "AS $f$ begin new.updated_at := now(); return new; end; $f$;\n"
        'CREATE TRIGGER touch BEFORE UPDATE ON public.t FOR EACH ROW EXECUTE FUNCTION '
        "public.touch();\n"
        'create or replace view "public"."v" as SELECT t.id FROM t;\n'
        "comment on table \"public\".\"t\" is 'x';\n"
        'grant select on "public"."t" to public;\n'
    )
    assert texts(sql) == []


def test_unverified_text_can_be_approved_even_when_the_sql_holds_a_double_dash(
    tmp_path: Path,
) -> None:
    sql = "INSERT INTO notes VALUES ('a -- b');\n"
    [hazard] = classify(sql, use_squawk=False)
    assert " -- " not in hazard.text
    body = render_plan("x", "sha256:" + "0" * 64, "sha256:" + "1" * 64, 15, [hazard], sql)
    header, _, rest = body.partition("\n\n")
    path = tmp_path / "20990101T000000Z_x.sql"
    path.write_text(f"{header}\n-- approve: {hazard.text} -- seeded notes\n\n{rest}")
    plan = parse_plan(path)
    assert review(plan.body, plan.approvals).missing == []


def test_a_new_tables_defaults_do_not_run_but_an_index_expression_does() -> None:
    fn = "CREATE FUNCTION public.f(int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT 1 $$;\n"
    assert texts(fn + "CREATE TABLE t (a int DEFAULT public.f(1));") == []
    assert kinds(fn + "CREATE INDEX CONCURRENTLY ix ON users (public.f(id));") == {UNVERIFIED}
