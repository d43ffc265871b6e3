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
