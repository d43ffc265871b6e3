"""Helpers for tests that run `invoke apply` as a process and interfere with it: start it
without waiting, wait for its sessions, hold a lock against it, SIGKILL it mid-statement."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
from conftest import REPO, Databases

from deploy import urls


def start_invoke(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """Start `invoke ARGS` like run_invoke, without waiting (one python process: kill it)."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(
    pg: Databases, url: str, sql: str, timeout: float = 30, proc: subprocess.Popen | None = None
) -> list[tuple]:
    """Poll `sql` until it returns rows (failing early, with its output, if `proc` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = pg.query(url, sql)
        if rows:
            return rows
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"apply exited {proc.returncode} early:\n{out}\n{err}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {sql}")


def apply_backends(url: str) -> str:
    """SQL listing apply's sessions on the database at `url`."""
    dbname = urls.database_name(url)
    return ("SELECT pid FROM pg_stat_activity WHERE application_name = 'schema-deploy' "
            f"AND datname = '{dbname}'")


@contextmanager
def holding_lock(
    url: str, table: str = "public.decks", application_name: str = "report-job"
) -> Iterator[psycopg2.extensions.connection]:
    """A session that holds ACCESS SHARE on `table` (a long report) until the block ends."""
    blocker = psycopg2.connect(**urls.psycopg2_dsn(url), application_name=application_name)
    try:
        with blocker.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"LOCK TABLE {table} IN ACCESS SHARE MODE")
        yield blocker
    finally:
        blocker.rollback()
        blocker.close()


def kill_apply_waiting_in(
    pg: Databases, project: Path, url: str, statement: str, snapshot_table: str
) -> None:
    """SIGKILL an apply while its `statement` (a concurrent build: CREATE INDEX CONCURRENTLY,
    REINDEX …) waits for an open snapshot on `snapshot_table`; return once its sessions are
    gone, the statement's work left half-done."""
    reader = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        reader.set_session(isolation_level="REPEATABLE READ")  # keeps its snapshot to the end
        with reader.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {snapshot_table}")
        proc = start_invoke(project, "apply", "--lock-timeout", "60s", "--target", url)
        try:
            wait_for(pg, url, apply_backends(url) + f" AND starts_with(query, '{statement}') "
                     "AND wait_event_type = 'Lock'", proc=proc)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            proc.kill()
            proc.communicate()
        wait_for(pg, url, "SELECT 1 WHERE NOT EXISTS (" + apply_backends(url) + ")")
    finally:
        reader.close()
