"""Resumes that always finish, history that never lies, one answer to "where is this DB".

Real PostgreSQL, real SIGKILLs, real pg_terminate_backend and real locks (issue 8).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from apply_helpers import apply_backends, kill_apply_waiting_in, start_invoke, wait_for
from conftest import REPO, Databases, run_invoke
from test_apply import FIRST, add_plan, head, history, live_fingerprint

from deploy import urls
from deploy.applier import apply_plans
from deploy.checker import run_check
from deploy.config import load_config
from deploy.errors import DeployError
from deploy.health import make_server
from deploy.plans import load_chain
from deploy.runner import plan_steps

# --- a chain that returns to an earlier state is not a fork --------------------------------


def test_a_chain_that_returns_to_an_earlier_state_can_be_extended(
    pg: Databases, project: Path
) -> None:
    base = head(project)
    add_plan(project, pg, "ALTER TABLE public.decks ADD COLUMN note text", "add note")
    add_plan(project, pg, "ALTER TABLE public.decks DROP COLUMN note", "drop note")
    assert head(project) == base  # back where it started
    extend = add_plan(project, pg, "ALTER TABLE public.decks ADD COLUMN other text", "add other")

    graph = load_chain(load_config(project).plans_dir)  # used to raise "Fork: 2 plans …"
    assert graph.head == graph.chain[-1].to_fingerprint and graph.chain[-1].path == extend
    assert not graph.problems()

    url = pg.new("cycle")
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 0, done.stderr
    assert live_fingerprint(project, url) == head(project)
    # The shortest path skips the round trip: the same schema needs no plan.
    assert [(r["plan"], r["status"]) for r in history(pg, url)] == [
        (FIRST, "applied"), (extend.name, "applied")]

    # A database at the repeated state is one plan behind, not forked.
    behind = pg.new("cycle_behind")
    pg.execute(behind, load_chain(load_config(project).plans_dir).chain[0].body)
    status = run_invoke(project, "status", "--format", "json", "--target", behind)
    assert status.returncode == 2, status.stdout + status.stderr
    assert json.loads(status.stdout)["pending"] == [extend.name]

    result = run_check(load_config(project), scratch="local")
    assert "fork" not in [f.kind for f in result.findings]
    assert all(p.replay == "landed" for p in result.plans)


# --- a kill at every step boundary ends, after one re-run, exactly at `to` -------------------

# Transactional and non-transactional steps, each kind the runner makes resumable.
_MIXED = [
    ("ALTER TABLE public.decks ADD COLUMN note text", True),
    ("CREATE INDEX CONCURRENTLY ix_decks_note ON public.decks (note)", False),
    ("REINDEX INDEX CONCURRENTLY public.ix_decks_note", False),
    ("COMMENT ON INDEX public.ix_decks_note IS 'notes'", True),
    ("DROP INDEX CONCURRENTLY public.ix_deck_subscriptions_deck_id", False),
    ("COMMENT ON COLUMN public.decks.note IS 'a note'", True),
    ("CREATE INDEX CONCURRENTLY ix_decks_note_id ON public.decks (note, id)", False),
]

# Runs apply in a process of its own and SIGKILLs that process at one exact point:
# ("statement", n): right after the n-th plan statement returned (a non-transactional one
# has committed, its step is not recorded; a transactional one is not committed);
# ("step", n): right after step n and its bookkeeping committed.
_KILLER = textwrap.dedent("""
    import os, signal, sys
    from deploy import applier, runner
    from deploy.config import load_config

    mode, number, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    done = [0]
    if mode == "statement":
        original = runner._execute

        def execute(cur, statement, filename):
            original(cur, statement, filename)
            done[0] += 1
            if done[0] == number:
                os.kill(os.getpid(), signal.SIGKILL)

        runner._execute = execute
    else:
        original_step = applier._Run._run_step

        def run_step(self, conn, plan, steps, index, before_commit):
            original_step(self, conn, plan, steps, index, before_commit)
            if index + 1 == number:
                os.kill(os.getpid(), signal.SIGKILL)

        applier._Run._run_step = run_step
    applier.apply_plans(load_config(), target=target)
""")


def _database(pg: Databases, name: str, template: str | None = None) -> str:
    """A database on the session server (a copy of `template`, if given) as a URL."""
    url = pg.server.create_database(name, template=template)
    return urls.sqlalchemy_url(url).replace("postgresql+psycopg2://", "postgresql://", 1)


def _kill_points() -> list[tuple[str, int]]:
    return [("statement", n) for n in range(1, len(_MIXED) + 1)] + [
        ("step", n) for n in range(1, len(_MIXED))]


def kill_apply_at(project: Path, url: str, mode: str, point: int) -> None:
    """Run apply on `url` in its own process and SIGKILL it at (`mode`, `point`), see _KILLER."""
    killer = project / "killer.py"
    killer.write_text(_KILLER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DATABASE_URL", None)
    proc = subprocess.run([sys.executable, str(killer), mode, str(point), url], cwd=project,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (mode, point, proc.stderr)


def test_a_kill_at_every_step_boundary_resumes_to_exactly_to(
    pg: Databases, project: Path
) -> None:
    base = "kill_base"
    base_url = _database(pg, base)
    apply_plans(load_config(project), target=base_url)
    sql = ";\n".join(statement for statement, _ in _MIXED) + ";"
    plan = add_plan(project, pg, sql, "mixed steps")
    for number, (mode, point) in enumerate(_kill_points()):
        url = _database(pg, f"kill_{number}", template=base)
        kill_apply_at(project, url, mode, point)
        again = run_invoke(project, "apply", "--target", url)
        label = f"killed after {mode} {point}"
        assert again.returncode == 0, (label, again.stdout, again.stderr)
        assert live_fingerprint(project, url) == head(project), label
        rows = [r for r in history(pg, url) if r["plan"] == plan.name]
        assert [r["status"] for r in rows] in (["applied"], ["interrupted", "applied"]), (
            label, rows)
        # The rows say what happened: never a plain "applied" as if nothing had gone wrong.
        told = " ".join(str(r["note"]) for r in rows)
        assert ("resumed at step" in told or "died" in told), (label, rows)
        if "confirmed by a later run" not in str(rows[-1]["note"]):  # else: reconciled as is
            assert rows[-1]["steps_done"] == len(_MIXED), (label, rows)
        status = run_invoke(project, "status", "--target", url)
        assert status.returncode == 0, (label, status.stdout)


# --- reads that never hang --------------------------------------------------------------------


@pytest.fixture
def locked(pg: Databases, project: Path) -> Iterator[tuple[str, int]]:
    """A database at head whose `decks` table another session holds ACCESS EXCLUSIVE."""
    url = pg.new("locked_read")
    apply_plans(load_config(project), target=url)
    blocker = psycopg2.connect(**urls.psycopg2_dsn(url), application_name="long-migration")
    try:
        with blocker.cursor() as cur:
            cur.execute("LOCK TABLE public.decks IN ACCESS EXCLUSIVE MODE")
        yield url, blocker.get_backend_pid()
    finally:
        blocker.rollback()
        blocker.close()


def test_status_answers_promptly_and_names_the_lock_holder(
    locked: tuple[str, int], project: Path
) -> None:
    url, pid = locked
    started = time.monotonic()
    done = run_invoke(project, "status", "--target", url, timeout=60)
    assert time.monotonic() - started < 20  # it used to wait for the whole lock
    assert done.returncode == 1, done.stdout + done.stderr
    assert "blocked by a lock" in done.stderr and f"pid {pid}" in done.stderr
    assert "long-migration" in done.stderr and "public.decks" in done.stderr


def test_healthz_answers_promptly_while_a_table_is_locked(
    locked: tuple[str, int], project: Path
) -> None:
    url, pid = locked
    with socket.socket() as sock:  # a free port for this test's server
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = make_server(load_config(project), port, target=url, host="127.0.0.1", ttl=0.1,
                         quiet=True, token="lock-test-token")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30)
        assert time.monotonic() - started < 15
        assert caught.value.code == 503
        assert f"pid {pid}" not in caught.value.read().decode()  # details only with the token
        request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz",
                                         headers={"Authorization": "Bearer lock-test-token"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        assert caught.value.code == 503
        body = caught.value.read().decode()
        assert "blocked by a lock" in body and f"pid {pid}" in body
    finally:
        server.shutdown()
        server.server_close()


def test_apply_at_head_names_the_blocker_instead_of_a_failed_connection(
    locked: tuple[str, int], project: Path
) -> None:
    url, pid = locked
    done = run_invoke(project, "apply", "--lock-timeout", "300ms", "--target", url, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "connection" not in done.stderr.lower()
    assert "blocked by a lock" in done.stderr and f"pid {pid}" in done.stderr


def test_check_target_and_status_say_part_way_not_drift(pg: Databases, project: Path) -> None:
    url = pg.new("part_way")
    apply_plans(load_config(project), target=url)
    sql = ";\n".join(statement for statement, _ in _MIXED) + ";"
    plan = add_plan(project, pg, sql, "mixed steps")
    kill_apply_at(project, url, "step", 2)

    result = run_check(load_config(project), scratch="local", target=url)
    assert result.target is not None
    assert result.target.state == "pending", result.findings  # it was "drift"
    assert result.target.pending == [plan.name]
    assert "target-drift" not in [f.kind for f in result.findings]
    status = run_invoke(project, "status", "--format", "json", "--target", url)
    document = json.loads(status.stdout)
    assert status.returncode == 2 and "part-way through" in document["matches"]
    assert document["pending"] == [plan.name]
    assert document["history"][0]["status"] == "running" and document["history"][0]["stale"]
    text = run_invoke(project, "status", "--target", url).stdout
    assert "running, but its apply is gone" in text


# --- history that never lies ------------------------------------------------------------------


def test_a_transactional_plan_whose_connection_is_killed_leaves_a_row(
    pg: Databases, project: Path
) -> None:
    url = pg.new("terminated")
    apply_plans(load_config(project), target=url)
    alter = "ALTER TABLE public.decks ADD COLUMN note text"
    plan = add_plan(project, pg, alter, "slow note", body=f"{alter};\nSELECT pg_sleep(3);")
    proc = start_invoke(project, "apply", "--target", url)
    try:
        sleeping = apply_backends(url) + " AND position('pg_sleep' in query) > 0"
        (backend,) = wait_for(pg, url, sleeping, proc=proc)[0]
        pg.query(url, "SELECT pg_terminate_backend(%s)", (backend,))
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, out + err
    rows = history(pg, url)
    assert [(r["plan"], r["status"]) for r in rows] == [(FIRST, "applied"), (plan.name, "failed")]
    assert "connection lost" in rows[-1]["error"]  # it used to leave no row at all

    again = run_invoke(project, "apply", "--target", url)
    assert again.returncode == 0, again.stderr
    assert [r["status"] for r in history(pg, url)] == ["applied", "failed", "applied"]


# --- statements that cannot be resumed are refused when the plan is read ---------------------


def test_an_unnamed_concurrent_index_is_refused_by_apply_and_check(
    pg: Databases, project: Path
) -> None:
    url = pg.new("unnamed")
    apply_plans(load_config(project), target=url)
    before = live_fingerprint(project, url)
    # add_plan itself refuses the unnamed form: build `to` with the name the server picks.
    plan = add_plan(project, pg, "CREATE INDEX decks_title_idx ON public.decks (title)",
                    "unnamed index", body="CREATE INDEX CONCURRENTLY ON public.decks (title);")
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{plan.name}:" in done.stderr and "Name the index" in done.stderr
    assert live_fingerprint(project, url) == before

    result = run_check(load_config(project), scratch="local")
    assert any(f.kind == "replay" and "Name the index" in f.message for f in result.findings)


def test_a_killed_reindex_concurrently_is_cleaned_up_and_resumed(
    pg: Databases, project: Path
) -> None:
    url = pg.new("reindex")
    apply_plans(load_config(project), target=url)
    plan = add_plan(project, pg, "ALTER TABLE public.decks ADD COLUMN note text;\n"
                    "REINDEX INDEX CONCURRENTLY public.ix_decks_owner_id_created_at",
                    "note and reindex")
    # An open snapshot makes REINDEX CONCURRENTLY wait after it created its _ccnew copy.
    kill_apply_waiting_in(pg, project, url, "REINDEX", "public.users")
    leftovers = "SELECT relname FROM pg_class WHERE relname LIKE '%%\\_ccnew%%'"
    assert pg.query(url, leftovers) == [("ix_decks_owner_id_created_at_ccnew",)]

    again = run_invoke(project, "apply", "--target", url)
    assert again.returncode == 0, again.stdout + again.stderr  # it blamed a hand-edited file
    assert "resumed at step 2" in again.stdout
    assert live_fingerprint(project, url) == head(project)
    assert pg.query(url, leftovers) == []
    assert history(pg, url)[-1]["plan"] == plan.name


# --- drift: one message, summarised by object ------------------------------------------------


def test_drift_names_a_whole_missing_table_once(pg: Databases, project: Path) -> None:
    url = pg.new("drift_table")
    apply_plans(load_config(project), target=url)
    pg.execute(url, "DROP TABLE public.deck_subscriptions")
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 4, done.stderr
    lines = [line for line in done.stderr.splitlines() if "deck_subscriptions" in line]
    assert len(lines) == 1, lines  # not one line per column, index and constraint
    assert "whole object missing" in lines[0] and "columns" in lines[0]
    status = run_invoke(project, "status", "--target", url)
    assert status.returncode == 4
    assert sum("deck_subscriptions" in line for line in status.stdout.splitlines()) == 1
    assert "matches no state of the plans" in status.stdout
    assert "matches no state of the plans" in done.stderr


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("CREATE INDEX CONCURRENTLY ix ON public.decks (title)", None),
        ("CREATE INDEX CONCURRENTLY ON public.decks (title)", "Name the index"),
        ("DROP INDEX CONCURRENTLY public.ix", None),
        ("REINDEX INDEX CONCURRENTLY public.ix", None),
        ("REINDEX (CONCURRENTLY) TABLE public.decks", None),
        ("REINDEX SCHEMA public", None),
        ("VACUUM public.decks", None),
        ("REINDEX SCHEMA CONCURRENTLY public", "REINDEX"),
        ("REINDEX DATABASE app", "REINDEX"),
        ("ALTER TABLE public.m DETACH PARTITION public.m_1 CONCURRENTLY", "DETACH PARTITION"),
        ("CREATE DATABASE other", "cannot be made safe"),
        ("ALTER SYSTEM SET work_mem = '64MB'", "cannot be made safe"),
    ],
)
def test_non_transactional_kinds_are_resumable_or_refused(sql: str, refused: str | None) -> None:
    body = "ALTER TABLE public.decks ADD COLUMN note text;\n" + sql + ";"
    if refused is None:
        assert [s.transactional for s in plan_steps(body, "p.sql")] == [True, False]
        return
    with pytest.raises(DeployError) as caught:
        plan_steps(body, "p.sql")
    assert caught.value.message.startswith("p.sql:2: ") and refused in caught.value.message
    assert caught.value.line == 2


def test_an_enum_value_added_by_a_run_that_died_is_skipped_on_resume(pg: Databases) -> None:
    """ALTER TYPE … ADD VALUE runs on its own (committed before a later step uses it); a
    run killed after it but before its step was recorded must not fail "already exists"."""
    from deploy.runner import plan_steps, run_steps

    url = pg.new("enum_resume")
    pg.execute(url, "CREATE TYPE public.mood AS ENUM ('ok', 'sad')")
    body = "ALTER TYPE public.mood ADD VALUE 'happy' AFTER 'ok';\n"
    steps = plan_steps(body, "p.sql")
    assert [step.transactional for step in steps] == [False]
    for _ in range(2):  # the second run is the resume after a crash
        conn = psycopg2.connect(**urls.psycopg2_dsn(url))
        try:
            run_steps(conn, steps, filename="p.sql")
        finally:
            conn.close()
    labels = pg.query(url, "SELECT enumlabel FROM pg_enum WHERE enumtypid = 'public.mood'::regtype "
                           "ORDER BY enumsortorder")
    assert [row[0] for row in labels] == ["ok", "happy", "sad"]
