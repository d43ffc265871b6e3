"""Error messages give advice that is right: no deleting healthy plans, no "run `invoke plan`"
when plan itself refuses, a lost connection or a read-only database named as such, and a
database that is only behind not blamed on someone's manual change."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import psycopg2
import pytest
from apply_helpers import apply_backends, holding_lock, start_invoke, wait_for
from conftest import Databases, run_invoke
from test_apply import FIRST, add_plan, head, history, live_fingerprint

from deploy import urls
from deploy.applier import apply_plans
from deploy.config import load_config
from deploy.runner import ConnectionLost, StatementFailed, plan_steps, run_steps

# --- one unreadable plan: say so, advise nothing about the others ---------------------------


@pytest.mark.parametrize("damaged", ["first", "middle"])
def test_a_damaged_header_gives_no_advice_about_healthy_plans(
    pg: Databases, project: Path, damaged: str
) -> None:
    second = add_plan(project, pg, "ALTER TABLE public.decks ADD COLUMN note text", "deck note")
    third = add_plan(project, pg, "ALTER TABLE public.decks ADD COLUMN tag text", "deck tag")
    config = load_config(project)
    broken = config.plans_dir / FIRST if damaged == "first" else second
    text = broken.read_text()
    broken.write_text(re.sub(r"(?m)^-- from: sha256:", "-- from: sha265:", text, count=1))

    done = run_invoke(project, "check", "--scratch", "local", "--format", "json")
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert [f["kind"] for f in document["findings"]] == ["damaged"]
    assert broken.name in document["findings"][0]["message"]
    healthy = [p.name for p in (config.plans_dir / FIRST, second, third) if p != broken]
    everything = json.dumps(document["findings"])
    assert not any(name in everything for name in healthy)
    assert "Orphan" not in everything and "Delete it" not in everything
    assert any("cannot be read" in note and "do not delete" in note
               for note in document["notes"])
    text_run = run_invoke(project, "check", "--scratch", "local")
    assert "Orphan" not in text_run.stdout + text_run.stderr


# --- replay failures: no circular "run `invoke plan`" -----------------------------------------


def test_a_plan_that_misses_its_to_does_not_send_plan_back_to_itself(project: Path) -> None:
    path = load_config(project).plans_dir / FIRST
    path.write_text(path.read_text() + "\nCREATE TABLE public.extra (id int);\n")
    done = run_invoke(project, "plan", "--scratch", "local", "--check")
    assert done.returncode == 1
    assert "does not land on its 'to'" in done.stderr
    assert "follow-up plan" not in done.stderr and "edited on purpose" not in done.stderr
    assert "Restore it from version control" in done.stderr and "--sql-file" in done.stderr


# --- a killed connection is not a refused statement -------------------------------------------


def test_a_killed_connection_is_not_blamed_on_the_plan(pg: Databases, project: Path) -> None:
    url = pg.new("killed")
    apply_plans(load_config(project), target=url)
    add_plan(project, pg, "ALTER TABLE public.decks ADD COLUMN note text", "deck note")
    before = live_fingerprint(project, url)
    with holding_lock(url):
        apply = start_invoke(project, "apply", "--lock-timeout", "60s", "--target", url)
        # Wait until the plan's ALTER TABLE queues behind the lock, then kill its session.
        rows = wait_for(pg, url, apply_backends(url) + " AND wait_event_type = 'Lock'",
                        proc=apply)
        pg.query(url, "SELECT pg_terminate_backend(%s)", (rows[0][0],))
        out, err = apply.communicate(timeout=60)
    assert apply.returncode == 1, out + err
    assert "connection to the database was lost" in err
    assert "Fix the plan" not in err and "refused the statement" not in err
    assert "Traceback" not in err
    assert live_fingerprint(project, url) == before
    again = run_invoke(project, "apply", "--target", url)
    assert again.returncode == 0, again.stderr
    assert live_fingerprint(project, url) == head(project)


def test_connection_lost_is_recognised_by_its_error_not_its_wording(pg: Databases) -> None:
    url = pg.new("lost")
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    killer = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        killer.autocommit = True
        with killer.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (conn.get_backend_pid(),))
        time.sleep(0.2)
        with pytest.raises(ConnectionLost) as lost:
            run_steps(conn, plan_steps("CREATE TABLE t (id int)", "p.sql"), filename="p.sql")
        assert lost.value.message.startswith("p.sql:1: the connection to the database was lost")
    finally:
        conn.close()
        killer.close()


# --- a read-only database is read-only, not "connection failed" -------------------------------


def test_a_read_only_database_is_named_read_only(pg: Databases, project: Path) -> None:
    url = pg.new("readonly")
    name = urls.database_name(url)
    pg.execute(url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 1
    assert "is read-only" in done.stderr and "default_transaction_read_only" in done.stderr
    assert "connection" not in done.stderr and "Traceback" not in done.stderr
    assert history(pg, url) == []
    # A dry run only reads: it still works and says what would run.
    dry = run_invoke(project, "apply", "--dry-run", "--target", url)
    assert dry.returncode == 0 and "would apply" in dry.stdout


def test_a_plan_statement_refused_as_read_only_says_so(pg: Databases) -> None:
    url = pg.new("readonly_stmt")
    conn = psycopg2.connect(**urls.psycopg2_dsn(url),
                            options="-c default_transaction_read_only=on")
    try:
        with pytest.raises(StatementFailed) as refused:
            run_steps(conn, plan_steps("CREATE TABLE t (id int)", "p.sql"), filename="p.sql")
    finally:
        conn.close()
    assert refused.value.pgcode == "25006"
    assert "the database is read-only" in refused.value.message
    assert "Fix the plan" not in refused.value.message


# --- a database that only lacks objects is not "changed by someone" --------------------------


def test_a_database_that_only_lacks_objects_is_not_blamed_on_a_manual_change(
    pg: Databases, project: Path
) -> None:
    url = pg.new("behind")
    apply_plans(load_config(project), target=url)
    pg.execute(url, "DROP TABLE public.user_sessions")
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 4
    assert "Someone changed it" not in done.stderr
    assert "not necessarily changed by hand" in done.stderr
    pg.execute(url, "CREATE TABLE public.hotfix (id int)")
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 4 and "changed outside the plans" in done.stderr
