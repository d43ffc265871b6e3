"""The differ's repairs, end to end: a model that real apps have plans first time."""

from __future__ import annotations

import shutil
from pathlib import Path

from deploy.differ.repairs.enums import add_value_statements
from deploy.differ.repairs.new_sequences import create_sequence_sql
from deploy.plans import parse_plan
from tests.conftest import run_invoke

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

    # A later change to the check plans first time, and touches only that check.
    write_models(empty_project, MODELS.replace("('fast', 'slow')", "('fast', 'slow', 'bulk')"))
    second = run_invoke(empty_project, "plan", "--name", "bulk lane", "--scratch", "local")
    assert second.returncode == 0, second.stdout + second.stderr
    [new_file] = [p for p in (empty_project / "schema" / "plans").glob("*.sql") if p != plan_file]
    body = parse_plan(new_file).text
    assert "lane IN ('fast', 'slow', 'bulk')" in body
    assert "job_state" not in body and "jobs_state" not in body  # the enum check is left alone

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
