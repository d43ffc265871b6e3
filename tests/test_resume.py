"""Resumes that always finish, history that never lies, one answer to "where is this DB".

Real PostgreSQL, real SIGKILLs, real pg_terminate_backend and real locks (issue 8).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
import pytest
from conftest import REPO, Databases, run_invoke
from test_apply import FIRST, add_plan, head, history, live_fingerprint
from test_apply_reliability import apply_backends, start_invoke, wait_for

from deploy import urls
from deploy.applier import apply_plans
from deploy.checker import run_check
from deploy.config import load_config
from deploy.plans import load_chain

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


def test_a_kill_at_every_step_boundary_resumes_to_exactly_to(
    pg: Databases, project: Path, tmp_path: Path
) -> None:
    base = "kill_base"
    base_url = _database(pg, base)
    apply_plans(load_config(project), target=base_url)
    sql = ";\n".join(statement for statement, _ in _MIXED) + ";"
    plan = add_plan(project, pg, sql, "mixed steps")
    killer = tmp_path / "killer.py"
    killer.write_text(_KILLER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DATABASE_URL", None)

    for number, (mode, point) in enumerate(_kill_points()):
        url = _database(pg, f"kill_{number}", template=base)
        proc = subprocess.run([sys.executable, str(killer), mode, str(point), url], cwd=project,
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == -signal.SIGKILL, (mode, point, proc.stderr)
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
