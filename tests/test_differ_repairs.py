"""The differ's repairs, end to end: a model that real apps have plans first time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from deploy.differ.repairs import check_constraints, comments, creation_order
from deploy.differ.repairs.enums import add_value_statements
from deploy.differ.repairs.new_sequences import create_sequence_sql
from deploy.plans import load_plans, parse_plan
from tests.conftest import run_invoke
from tests.test_plan import add_archived_at

MODELS = '''
"""A third-party-like model: SERIAL primary key, a non-native enum, a CHECK IN."""
from sqlalchemy import CheckConstraint, Column, Enum, Integer, MetaData, String, Table

metadata = MetaData()
EXTENSIONS: tuple[str, ...] = ()

jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True),
    Column("state", Enum("queued", "running", "done", name="job_state", native_enum=False,
                         create_constraint=True)),
    Column("lane", String(10)),
    CheckConstraint("lane IN ('fast', 'slow')", name="jobs_lane_check"),
)
'''


def write_models(project: Path, models: str) -> None:
    """Replace the copied project's schema package by a one-table model, no SQL files."""
    (project / "schema" / "__init__.py").write_text(models)
    (project / "schema" / "models.py").unlink(missing_ok=True)
    shutil.rmtree(project / "schema" / "sql", ignore_errors=True)
    (project / "schema" / "sql").mkdir()


def test_integer_pk_non_native_enum_and_check_in_plan_first_time(empty_project):
    write_models(empty_project, MODELS)
    first = run_invoke(empty_project, "plan", "--name", "jobs", "--scratch", "local")
    assert first.returncode == 0, first.stdout + first.stderr
    [plan_file] = (empty_project / "schema" / "plans").glob("*.sql")
    text = parse_plan(plan_file).text
    assert "AS integer" in text  # the SERIAL's sequence, not a bigint one
    assert "lane IN ('fast', 'slow')" in text
    assert "state IN ('queued', 'running', 'done')" in text  # the non-native enum's check

    # A later change to the check plans first time, and touches only that check.
    write_models(empty_project, MODELS.replace("('fast', 'slow')", "('fast', 'slow', 'bulk')"))
    second = run_invoke(empty_project, "plan", "--name", "bulk lane", "--scratch", "local")
    assert second.returncode == 0, second.stdout + second.stderr
    [new_file] = [p for p in (empty_project / "schema" / "plans").glob("*.sql") if p != plan_file]
    body = parse_plan(new_file).text
    assert "lane IN ('fast', 'slow', 'bulk')" in body
    assert "state IN" not in body and "job_state" not in body  # the enum's check is left alone

    again = run_invoke(empty_project, "plan", "--check", "--scratch", "local")
    assert again.returncode == 0, again.stdout + again.stderr


def test_create_sequence_states_type_and_every_option():
    sql = create_sequence_sql(
        "public.t_id_seq", "type=integer start=1 increment=1 min=1 max=2147483647 cache=1")
    assert sql == ("CREATE SEQUENCE public.t_id_seq AS integer INCREMENT BY 1 MINVALUE 1 "
                   "MAXVALUE 2147483647 START WITH 1 CACHE 1 NO CYCLE;")


def test_add_value_places_each_label_and_quotes_it():
    assert add_value_statements("public.mood", ["sad", "ok"], ["bad", "sad", "it's", "ok"]) == [
        "ALTER TYPE public.mood ADD VALUE IF NOT EXISTS 'bad' BEFORE 'sad';",
        "ALTER TYPE public.mood ADD VALUE IF NOT EXISTS 'it''s' AFTER 'sad';",
    ]


# --- previews and drift SQL go through the same proof as plans ------------------------------

def test_target_preview_is_proven_on_a_replay_of_the_live_schema(project, pg):
    target = pg.new("preview")
    pg.execute(target, load_plans(project / "schema" / "plans")[0].body)
    add_archived_at(project)
    result = run_invoke(project, "plan", "--target", target, "--scratch", "local",
                        "--format", "json")
    assert result.returncode == 2, result.stderr
    assert "Proven: applied to a replay of the live schema" in result.stdout


def test_target_preview_off_the_plans_says_it_is_unproven(project, pg):
    target = pg.new("preview_drift")
    pg.execute(target, load_plans(project / "schema" / "plans")[0].body
               + "\nCREATE TABLE public.stray (x integer);")
    result = run_invoke(project, "plan", "--target", target, "--scratch", "local")
    assert result.returncode == 2, result.stderr
    assert "UNPROVEN: the live schema is not one the plans reach" in result.stdout


def test_check_drift_sql_that_misses_something_says_unproven(project):
    add_archived_at(project)  # SQL migra writes …
    (project / "schema" / "sql" / "40_storage.sql").write_text(  # … and a change it does not
        "ALTER TABLE public.decks ALTER COLUMN description SET STORAGE EXTERNAL;\n")
    result = run_invoke(project, "check", "--scratch", "local", "--format", "json")
    assert result.returncode == 4, result.stderr
    document = json.loads(result.stdout)
    assert document["drift"]["proven"] is False
    [finding] = [f for f in document["findings"] if f["kind"] == "drift"]
    assert "UNPROVEN SQL" in finding["details"] and "storage=e" in finding["details"]


def test_check_drift_sql_that_lands_is_marked_proven(project):
    add_archived_at(project)
    result = run_invoke(project, "check", "--scratch", "local", "--format", "json")
    assert result.returncode == 4, result.stderr
    assert json.loads(result.stdout)["drift"]["proven"] is True


# --- CHECK IN lists: the rewrite applies to varchar only, so it cannot mask a difference ----

def _check_sql(expression: str) -> str:
    return f'alter table "public"."t" add constraint "c" CHECK ({expression}) not valid;'


PRINTED = "((s)::text = ANY ((ARRAY['a'::character varying, 'b'::character varying])::text[]))"


def test_varchar_in_list_is_written_as_the_in_list_it_came_from():
    after = {"column public.t.s": "type=character varying(5)"}
    assert check_constraints._rewrite(_check_sql(PRINTED), after) == (
        "ALTER TABLE public.t ADD CONSTRAINT c CHECK (s IN ('a', 'b')) NOT VALID;")
    negated = PRINTED.replace("= ANY", "<> ALL")
    assert "s NOT IN ('a', 'b')" in check_constraints._rewrite(_check_sql(negated), after)


def test_in_list_on_a_column_that_is_not_varchar_is_left_alone():
    # (e)::text on an enum column: dropping the cast would compare enums instead of text.
    after = {"column public.t.s": "type=mood"}
    assert check_constraints._rewrite(_check_sql(PRINTED), after) == _check_sql(PRINTED)


# --- ordering and comments: pure functions over statements ----------------------------------

def test_creation_order_pulls_what_is_used_before_its_first_user():
    child = 'create table "public"."a" ("x" integer) inherits ("public"."b");'
    check = 'alter table "public"."a" add constraint "c" CHECK (valid(x)) not valid;'
    validate = 'alter table "public"."a" validate constraint "c";'
    parent = 'create table "public"."b" ("x" integer);'
    function = "CREATE OR REPLACE FUNCTION public.valid(x integer) RETURNS boolean " \
               "LANGUAGE sql AS $$ select x > 0 $$;"
    assert creation_order.reorder([child, check, validate, parent, function]) == [
        parent, child, function, check, validate]


def test_creation_order_sees_relations_and_calls_nested_in_a_view_query():
    view = ('create view "public"."v" as select x.a from (select a from "public"."t" '
            'where ok(a)) x join "public"."w" using (a);')
    table = 'create table "public"."t" ("a" integer);'
    other = 'create table "public"."w" ("a" integer);'
    function = "CREATE OR REPLACE FUNCTION public.ok(a integer) RETURNS boolean " \
               "LANGUAGE sql AS $$ select a > 0 $$;"
    assert creation_order.reorder([view, function, other, table]) == [
        function, other, table, view]


def test_dropped_objects_lose_their_comments_with_them():
    assert comments.dropped_names([
        'drop view if exists "public"."v";',
        'alter table "public"."t" drop constraint "t_ck";',
        'drop function if exists "public"."f"(integer);',
    ]) == {"public.v", "public.t.t_ck", "public.f"}
    assert comments._is_dropped("column public.v.id", {"public.v"})
    assert not comments._is_dropped("column public.vv.id", {"public.v"})


def test_parse_memo_shares_trees_only_inside_a_diff():
    """Repairs share one parse per statement text inside a diff; parse_fresh is the caller's own
    tree (repairs that edit a tree take one), and outside a diff nothing is remembered."""
    from deploy.differ.sqltext import parse_fresh, parse_memo, parse_one

    sql = "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY)"
    assert parse_one(sql) is not parse_one(sql)
    with parse_memo():
        shared = parse_one(sql)
        assert parse_one(sql) is shared
        own = parse_fresh(sql)
        assert own is not shared and own == shared
        own.tableElts = None  # an edit of the caller's copy is not seen by the others
        assert parse_one(sql).tableElts
    assert parse_one(sql) is not shared


def test_schemainspect_finds_its_caller_the_same_with_the_frames_only_stack():
    import inspect

    from schemainspect.misc import external_caller

    from deploy.differ.migra_adapter import frames_only_stack

    real = inspect.stack
    expected = external_caller()
    with frames_only_stack():
        assert external_caller() == expected == __name__
    assert inspect.stack is real


def test_frozen_reads_answer_each_query_once_per_database_inside_the_block(pg):
    """The planner promises "empty", "base" and "desired" do not change while it diffs them
    (proofs run on copies): inside frozen_reads a catalog read is answered once; outside,
    and for other databases, every read goes to the server."""
    from deploy.differ import frozen_reads
    from deploy.differ.repairs._common import rows
    from deploy.proof import connected

    frozen_url, other_url = pg.new("frozen_reads"), pg.new("fresh_reads")
    query = "SELECT relname FROM pg_class WHERE relname LIKE 'fr\\_%%' ORDER BY 1"
    with frozen_reads([frozen_url]):
        with connected(frozen_url) as conn:
            assert rows(conn, query) == []
        for url in (frozen_url, other_url):
            pg.execute(url, "CREATE TABLE fr_t (id int)")
        with connected(frozen_url) as conn:
            assert rows(conn, query) == []  # the first answer: the promise was broken
        with connected(other_url) as conn:
            assert rows(conn, query) == [("fr_t",)]
    with connected(frozen_url) as conn:
        assert rows(conn, query) == [("fr_t",)]
