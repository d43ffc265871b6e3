"""Reliability of `invoke apply` against a real PostgreSQL, each test checking the state after.

Kill -9 mid-plan, concurrent applies, lock contention, bad connection inputs (no password
may leak), damaged plans, a plan that misses its `to`, hand-made drift.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest
from apply_helpers import (
    apply_backends,
    holding_lock,
    kill_apply_waiting_in,
    start_invoke,
    wait_for,
)
from conftest import Databases, PasswordServer, run_invoke
from test_apply import FIRST, add_plan, head, history, live_fingerprint

from deploy.applier import apply_plans
from deploy.config import load_config
from deploy.plans import load_chain

PASSWORD = PasswordServer.password  # the shared password_pg fixture's
WRONG_PASSWORD = "Wr0ng-Secret_pw"
SLOW = 4  # seconds of pg_sleep inside the slow plans


# --- helpers --------------------------------------------------------------------------------


def no_secret(*outputs: str, secrets: tuple[str, ...] = (PASSWORD, WRONG_PASSWORD)) -> None:
    for output in outputs:
        for secret in secrets:
            assert secret not in output


def free_port() -> int:
    """A free TCP port in 55600-55699 (the range these tests may use)."""
    for port in range(55620, 55700):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in 55620-55699")


# --- kill -9 --------------------------------------------------------------------------------


def test_kill_9_in_the_middle_of_a_plan_leaves_from_and_a_rerun_completes(
    pg: Databases, project: Path
) -> None:
    url = pg.new("kill")
    apply_plans(load_config(project), target=url)
    alter = "ALTER TABLE public.decks ADD COLUMN note text"
    plan = add_plan(project, pg, alter, "slow note",
                    body=f"{alter};\nSELECT pg_sleep({SLOW});")
    before = live_fingerprint(project, url)

    proc = start_invoke(project, "apply", "--target", url)
    try:
        sleeping = apply_backends(url) + " AND position('pg_sleep' in query) > 0"
        (backend,) = wait_for(pg, url, sleeping, proc=proc)[0]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    # Uncommitted work is invisible at once; the orphaned backend dies within ~1 s
    # (client_connection_check_interval) and rolls back, releasing its locks.
    assert live_fingerprint(project, url) == before
    deadline = time.monotonic() + 15
    while pg.query(url, f"SELECT 1 FROM pg_stat_activity WHERE pid = {backend}"):
        assert time.monotonic() < deadline, "the killed apply's backend kept running"
        time.sleep(0.1)
    assert live_fingerprint(project, url) == before
    # History says the plan was tried; nobody finished it yet.
    assert [(r["plan"], r["status"]) for r in history(pg, url)] == [
        (FIRST, "applied"), (plan.name, "running")
    ]

    again = run_invoke(project, "apply", "--target", url)
    assert again.returncode == 0, again.stderr
    assert live_fingerprint(project, url) == head(project)
    rows = history(pg, url)
    assert [(r["plan"], r["status"]) for r in rows] == [
        (FIRST, "applied"), (plan.name, "interrupted"), (plan.name, "applied")
    ]
    assert "died before finishing" in rows[1]["note"]


def test_kill_9_during_a_concurrent_index_build_resumes_and_rebuilds(
    pg: Databases, project: Path
) -> None:
    url = pg.new("kill_cic")
    apply_plans(load_config(project), target=url)
    plan = add_plan(project, pg, "CREATE INDEX CONCURRENTLY ix_decks_title ON public.decks (title)",
                    "title index")
    # An open snapshot holds the concurrent build in its wait phase, its index still INVALID.
    kill_apply_waiting_in(pg, project, url, "CREATE INDEX CONCURRENTLY", "public.decks")
    assert pg.query(url, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                         "'public.ix_decks_title'::regclass") == [(False,)]
    status = run_invoke(project, "status", "--target", url)
    assert status.returncode == 2 and "part-way through" in status.stdout

    again = run_invoke(project, "apply", "--target", url)
    assert again.returncode == 0, again.stderr
    assert "resumed at step 1" in again.stdout
    assert live_fingerprint(project, url) == head(project)
    assert pg.query(url, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                         "'public.ix_decks_title'::regclass") == [(True,)]
    assert [(r["plan"], r["status"]) for r in history(pg, url)][-1] == (plan.name, "applied")


# --- concurrency ------------------------------------------------------------------------------


def test_two_applies_started_together_both_succeed_and_each_plan_runs_once(
    pg: Databases, project: Path
) -> None:
    alter = "ALTER TABLE public.decks ADD COLUMN note text"
    second = add_plan(project, pg, alter, "slow note", body=f"{alter};\nSELECT pg_sleep(1);")
    url = pg.new("together")
    procs = [start_invoke(project, "apply", "--target", url) for _ in range(2)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    stdouts = sorted(out for out, _ in outputs)
    assert sum("is now at" in out for out in stdouts) == 1
    assert sum("is up to date" in out for out in stdouts) == 1
    assert any("another apply is running" in err for _, err in outputs)
    assert live_fingerprint(project, url) == head(project)
    assert [(r["plan"], r["status"]) for r in history(pg, url)] == [
        (FIRST, "applied"), (second.name, "applied")
    ]


def test_a_lock_held_by_another_session_fails_cleanly_then_succeeds(
    pg: Databases, project: Path
) -> None:
    url = pg.new("locked")
    apply_plans(load_config(project), target=url)
    add_plan(project, pg, "ALTER TABLE public.decks ADD COLUMN note text", "deck note")
    before = live_fingerprint(project, url)

    with holding_lock(url) as blocker:
        started = time.monotonic()
        done = run_invoke(project, "apply", "--lock-timeout", "200ms", "--retries", "2",
                          "--target", url)
        assert time.monotonic() - started < 15
        assert done.returncode == 1, done.stdout + done.stderr
        assert "could not get its locks after 2 attempt(s)" in done.stderr
        assert f"pid {blocker.get_backend_pid()}" in done.stderr
        assert "report-job" in done.stderr and "LOCK TABLE public.decks" in done.stderr
        assert "retrying in" in done.stderr  # it did wait and retry before giving up
        assert live_fingerprint(project, url) == before
        assert pg.query(url, "SELECT count(*) FROM information_schema.columns "
                             "WHERE table_name = 'decks' AND column_name = 'note'") == [(0,)]

    again = run_invoke(project, "apply", "--lock-timeout", "200ms", "--target", url)
    assert again.returncode == 0, again.stderr
    assert live_fingerprint(project, url) == head(project)
    assert [r["status"] for r in history(pg, url)] == ["applied", "failed", "applied"]


# --- bad input: clear errors, exit 1, no password anywhere ---------------------------------


def test_unreachable_host_fails_fast_without_leaking_the_password(project: Path) -> None:
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/app"
    started = time.monotonic()
    done = run_invoke(project, "apply", "--wait", "1", "--target", url)
    assert time.monotonic() - started < 10
    assert done.returncode == 1
    assert "Cannot connect to 127.0.0.1" in done.stderr and "attempt" in done.stderr
    no_secret(done.stdout, done.stderr)


def test_wrong_password_is_a_clear_error_without_the_password(
    password_pg: PasswordServer, project: Path
) -> None:
    wrong = password_pg.url(password=WRONG_PASSWORD)
    done = run_invoke(project, "apply", "--wait", "5", "--target", wrong)
    assert done.returncode == 1
    assert "password authentication failed" in done.stderr
    assert "user name or password is wrong" in done.stderr
    no_secret(done.stdout, done.stderr)
    as_json = run_invoke(project, "status", "--format", "json", "--target", wrong)
    assert as_json.returncode == 1
    no_secret(as_json.stdout, as_json.stderr)


def test_password_url_with_sslmode_works_and_never_prints_the_password(
    password_pg: PasswordServer, project: Path
) -> None:
    database = password_pg.create_database("apply_sslmode")
    url = database + "?sslmode=disable&application_name=ignored"
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 0, done.stderr
    status = run_invoke(project, "status", "--format", "json", env={"DATABASE_URL": url})
    assert status.returncode == 0, status.stderr
    no_secret(done.stdout, done.stderr, status.stdout, status.stderr)
    # sslmode really reaches libpq: this server has no SSL.
    refused = run_invoke(project, "apply", "--wait", "1", "--target",
                         database + "?sslmode=require")
    assert refused.returncode == 1 and "SSL" in refused.stderr
    no_secret(refused.stdout, refused.stderr)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://app:{PASSWORD}@db.internal:notaport/app",
        f"mysql://app:{PASSWORD}@db.internal:3306/app",
        f"postgresql://app:{PASSWORD}@db.internal:5432",
        "definitely not a url",
    ],
)
def test_malformed_url_is_a_clear_error_without_the_password(project: Path, url: str) -> None:
    done = run_invoke(project, "apply", "--wait", "1", "--target", url)
    assert done.returncode == 1
    assert "The database URL" in done.stderr
    no_secret(done.stdout, done.stderr)


def test_missing_plans_directory_is_a_clear_error(pg: Databases, project: Path) -> None:
    shutil.rmtree(project / "schema" / "plans")
    url = pg.new("noplans")
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 1
    assert "plans directory" in done.stderr and "does not exist" in done.stderr
    assert history(pg, url) == []


def test_damaged_plan_header_is_a_clear_error(pg: Databases, project: Path) -> None:
    plan = next((project / "schema" / "plans").glob("*.sql"))
    text = plan.read_text()
    plan.write_text(text.replace("-- to:   sha256:", "-- to:   sha265:", 1))
    url = pg.new("damaged")
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 1
    assert "damaged header" in done.stderr and f"{plan.name}:3" in done.stderr
    assert pg.query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


# --- plans that do not do what they say, and hand-made drift --------------------------------


def test_a_plan_that_misses_its_to_is_rolled_back(pg: Databases, project: Path) -> None:
    plan = next((project / "schema" / "plans").glob("*.sql"))
    plan.write_text(plan.read_text() + "\nCREATE TABLE public.sneaky (id integer);\n")
    url = pg.new("missed")
    start = load_chain(load_config(project).plans_dir).start
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 1, done.stdout
    assert "not the plan's 'to'" in done.stderr and "rolled back" in done.stderr
    assert "+ relation public.sneaky" in done.stderr  # the residual difference is shown
    assert live_fingerprint(project, url) == start
    assert pg.query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    assert [r["status"] for r in history(pg, url)] == ["failed"]


def test_hand_made_drift_is_refused_and_nothing_changes(pg: Databases, project: Path) -> None:
    url = pg.new("drift")
    apply_plans(load_config(project), target=url)
    pg.execute(url, "ALTER TABLE public.decks ADD COLUMN hotfix text")
    before = live_fingerprint(project, url)
    rows = history(pg, url)

    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 4, done.stderr
    assert "Drift" in done.stderr and "invoke plan --target" in done.stderr
    assert "+ column public.decks.hotfix: type=text" in done.stderr
    assert live_fingerprint(project, url) == before
    assert history(pg, url) == rows

    status = run_invoke(project, "status", "--target", url)
    assert status.returncode == 4 and "DRIFT" in status.stdout and "hotfix" in status.stdout


# --- a plan that would end its own transaction ------------------------------------------------


def test_a_plan_with_commit_is_refused_before_anything_runs(pg: Databases, project: Path) -> None:
    url = pg.new("commit")
    apply_plans(load_config(project), target=url)
    before = live_fingerprint(project, url)
    # Without the refusal: `a` commits with the COMMIT, the failing statement after it "rolls
    # back" nothing, and the error would claim that nothing of the plan was kept.
    plan = add_plan(
        project, pg, "ALTER TABLE public.decks ADD COLUMN a int", "with commit",
        body="ALTER TABLE public.decks ADD COLUMN a int;\nCOMMIT;\n"
             "ALTER TABLE public.decks ADD COLUMN a int;\n",
    )
    commit_line = plan.read_text().splitlines().index("COMMIT;") + 1

    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 1
    assert f"{plan.name}:{commit_line}: a plan must not contain COMMIT" in done.stderr
    assert live_fingerprint(project, url) == before
    assert pg.query(url, "SELECT 1 FROM information_schema.columns "
                         "WHERE table_name = 'decks' AND column_name = 'a'") == []
    assert [r["plan"] for r in history(pg, url)] == [FIRST]

    checked = run_invoke(project, "check", "--scratch", "local", "--format", "json")
    assert checked.returncode == 1
    assert f'"line": {commit_line}' in checked.stdout
    assert "a plan must not contain COMMIT" in checked.stdout
