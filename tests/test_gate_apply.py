"""The hazard gate and the pinned session on a real database (issue 8).

Each data-loss scenario used to be applied with exit 0 and the rows gone; now apply refuses
it (exit 3) before anything runs. A plan can no longer change the session for the plans
after it, and a resumed plan runs with the settings its earlier steps made.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import psycopg2
import pytest
from conftest import Databases, run_invoke
from test_apply import add_plan, head, history, live_fingerprint

from deploy import urls
from deploy.applier import apply_plans
from deploy.config import load_config
from deploy.errors import UNAPPROVED_HAZARD, DeployError
from deploy.fingerprint import describe, fingerprint
from deploy.hazards import classify
from deploy.plans import load_chain, render_plan
from deploy.runner import plan_steps, run_steps

_numbers = itertools.count(1)

# Every scenario also adds a column, so that its plan leads somewhere new.
MARKER = "ALTER TABLE public.decks ADD COLUMN gate_marker text;\n"

USERS = """
INSERT INTO public.users (email, password_hash, display_name)
VALUES ('ada@example.com', 'x', 'Ada'), ('bob@example.com', 'y', 'Bob');
"""


def write_plan(project: Path, pg: Databases, sql: str, name: str, *, approve: bool) -> Path:
    """A plan on top of the project's head whose `to` is what `sql` produces when run as
    plain SQL (not through the runner, which would refuse some of these plans)."""
    config = load_config(project)
    url = pg.new("build")
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        for plan in load_chain(config.plans_dir).chain:
            with conn, conn.cursor() as cur:
                cur.execute(plan.body)
        conn.close()
        conn = psycopg2.connect(**urls.psycopg2_dsn(url))  # a fresh session, like apply
        from_fp = fingerprint(describe(conn, config.exclusions))
        with conn, conn.cursor() as cur:
            cur.execute(sql)
        to_fp = fingerprint(describe(conn, config.exclusions))
    finally:
        conn.close()
    hazards = classify(sql)
    text = render_plan(name, from_fp, to_fp, 15, hazards, sql)
    if approve and hazards:
        header, _, rest = text.partition("\n\n")
        approvals = "\n".join(f"-- approve: {h.text} -- test" for h in hazards)
        text = f"{header}\n{approvals}\n\n{rest}"
    path = config.plans_dir / f"20990201T0000{next(_numbers):02d}Z_{name.replace(' ', '_')}.sql"
    path.write_text(text, encoding="utf-8")
    return path


def user_rows(pg: Databases, url: str) -> list[tuple]:
    return pg.query(url, "SELECT email, display_name FROM public.users ORDER BY email")


def columns(pg: Databases, url: str, table: str) -> list[str]:
    return [r[0] for r in pg.query(
        url, "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
             "AND table_name = %s ORDER BY column_name", (table,))]


# The list: "no hazard, applied", rows gone.
DATA_LOSS = {
    "delete in a CTE":
        "WITH d AS (DELETE FROM public.users RETURNING 1) SELECT count(*) FROM d;",
    "merge then delete":
        "MERGE INTO public.users u USING (SELECT 1 AS one) s ON true WHEN MATCHED THEN DELETE;",
    "update without where": "UPDATE public.users SET display_name = 'gone';",
    "create table as with a deleting CTE":
        "CREATE TABLE public.kept AS WITH d AS (DELETE FROM public.users RETURNING id) "
        "SELECT id FROM d;",
    "drop in a DO block": "DO $$ BEGIN DROP TABLE public.users CASCADE; END $$;",
    "EXECUTE in a DO block": "DO $$ BEGIN EXECUTE 'DROP TABLE public.users CASCADE'; END $$;",
    "DDL in a function the plan creates and calls":
        "CREATE FUNCTION public.wipe() RETURNS void LANGUAGE plpgsql AS "
        "$$ BEGIN DROP TABLE public.users CASCADE; END $$;\nSELECT public.wipe();",
    "temp table": "CREATE TEMP TABLE users (id int);\nDROP TABLE public.users CASCADE;",
    "temp view": "CREATE TEMP VIEW users AS SELECT 1 AS id;\nDROP TABLE public.users CASCADE;",
    "temp sequence": "CREATE TEMP SEQUENCE users;\nDROP TABLE public.users CASCADE;",
    "search_path then drop type":
        "CREATE SCHEMA scratch;\nSET search_path = scratch;\n"
        "CREATE TYPE card_status AS ENUM ('x');\nDROP TYPE public.card_status CASCADE;",
    "search_path then drop column":
        "CREATE SCHEMA scratch;\nSET search_path = scratch;\n"
        "CREATE TABLE flashcards (front text);\n"
        "ALTER TABLE public.flashcards DROP COLUMN front CASCADE;",
}


@pytest.mark.parametrize("name", DATA_LOSS)
def test_data_loss_scenario_is_refused_with_rows_intact(
    pg: Databases, project: Path, name: str
) -> None:
    url = pg.new("gate")
    apply_plans(load_config(project), target=url)
    pg.execute(url, USERS)
    before = user_rows(pg, url), columns(pg, url, "flashcards"), live_fingerprint(project, url)
    write_plan(project, pg, MARKER + DATA_LOSS[name], name, approve=False)

    with pytest.raises(DeployError) as caught:
        apply_plans(load_config(project), target=url)
    assert caught.value.exit_code == UNAPPROVED_HAZARD, caught.value.message
    after = user_rows(pg, url), columns(pg, url, "flashcards"), live_fingerprint(project, url)
    assert after == before
    assert len(before[0]) == 2 and "front" in before[1] and "status" in before[1]


def test_an_unverified_statement_needs_an_approval_through_the_cli(
    pg: Databases, project: Path
) -> None:
    url = pg.new("gate_cli")
    apply_plans(load_config(project), target=url)
    pg.execute(url, USERS)
    plan = write_plan(project, pg, MARKER + "DO $$ BEGIN DELETE FROM public.users; END $$;",
                      "do block", approve=False)
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "UNVERIFIED DO block" in done.stderr and plan.name in done.stderr
    assert len(user_rows(pg, url)) == 2

    # Approved, it runs: the gate asks for a reviewer, it does not forbid.
    text = plan.read_text()
    hazard = next(line for line in text.splitlines() if line.startswith("-- hazard: "))
    plan.write_text(text.replace(hazard, hazard + "\n" + hazard.replace(
        "-- hazard: ", "-- approve: ") + " -- sessions are recreated at login", 1))
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert user_rows(pg, url) == []


# --- the pinned session --------------------------------------------------------------------


def _hold_lock(url: str) -> psycopg2.extensions.connection:
    """Another session holding a SHARE lock on public.decks until it is closed: readers
    (apply's catalog reads) pass, ALTER TABLE queues behind it."""
    holder = psycopg2.connect(**urls.psycopg2_dsn(url))
    with holder.cursor() as cur:
        cur.execute("LOCK TABLE public.decks IN SHARE MODE")
    return holder


def test_reset_all_in_a_plan_is_refused_before_anything_runs(
    pg: Databases, project: Path
) -> None:
    url = pg.new("reset_all")
    apply_plans(load_config(project), target=url)
    start = live_fingerprint(project, url)
    first = write_plan(project, pg, "RESET ALL;\nCOMMENT ON TABLE public.users IS 'people';",
                       "reset all", approve=True)
    write_plan(project, pg, "ALTER TABLE public.decks ADD COLUMN later text;", "later",
               approve=True)
    holder = _hold_lock(url)
    try:
        began = time.monotonic()
        # Before: the RESET ALL plan ran, then the next plan queued behind the lock with
        # lock_timeout off, blocking everyone behind it (the subprocess timed out).
        done = run_invoke(project, "apply", "--target", url, "--lock-timeout", "300ms",
                          "--retries", "1", timeout=60)
        assert time.monotonic() - began < 45
    finally:
        holder.close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{first.name}:" in done.stderr and "RESET ALL" in done.stderr
    assert live_fingerprint(project, url) == start


def test_a_plan_cannot_switch_the_lock_timeout_off_for_the_next_plan(
    pg: Databases, project: Path
) -> None:
    url = pg.new("pin_timeout")
    apply_plans(load_config(project), target=url)
    # A reviewed (approved) DO block turns lock_timeout off for the session: the runner's
    # refusal cannot see inside it, so the pin before each step is what holds.
    sneaky = write_plan(
        project, pg,
        "DO $$ BEGIN PERFORM set_config('lock_timeout', '0', false); END $$;\n"
        "COMMENT ON TABLE public.users IS 'people';", "sneaky", approve=True)
    write_plan(project, pg, "ALTER TABLE public.decks ADD COLUMN later text;", "later",
               approve=True)
    holder = _hold_lock(url)
    # Without the pin, apply would wait for the lock forever: release it after a while so
    # that the old behaviour fails the assertions below instead of hanging the suite.
    release = threading.Timer(25, holder.close)
    release.start()
    try:
        began = time.monotonic()
        with pytest.raises(DeployError) as caught:
            apply_plans(load_config(project), target=url, lock_timeout="300ms", retries=1)
        assert time.monotonic() - began < 20
    finally:
        release.cancel()
        holder.close()
    assert "could not get its locks" in caught.value.message
    assert [row["plan"] for row in history(pg, url) if row["status"] == "applied"][-1] == \
        sneaky.name
    apply_plans(load_config(project), target=url)
    assert live_fingerprint(project, url) == head(project)


RESUMABLE = """\
set check_function_bodies = off;
CREATE FUNCTION public.deck_total() RETURNS bigint LANGUAGE sql
    AS $$ SELECT count(*) FROM public.deck_totals $$;
CREATE INDEX CONCURRENTLY ix_decks_gate ON public.decks (title);
CREATE FUNCTION public.deck_total2() RETURNS bigint LANGUAGE sql
    AS $$ SELECT count(*) FROM public.deck_totals $$;
CREATE TABLE public.deck_totals (n int);
"""


def test_settings_made_before_a_non_transactional_step_survive_a_resume(
    pg: Databases, project: Path
) -> None:
    url = pg.new("resume_settings")
    apply_plans(load_config(project), target=url)
    steps = plan_steps(RESUMABLE, "resumable")
    assert [s.transactional for s in steps] == [True, False, True]
    assert steps[2].replay == ("set check_function_bodies = off",)

    first = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:  # the run that dies after the concurrent index build
        run_steps(first, steps[:2])
    finally:
        first.close()
    again = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:  # a new session resumes at step 3; before, check_function_bodies was back on
        run_steps(again, steps, start=2)
    finally:
        again.close()
    assert pg.query(url, "SELECT public.deck_total2()") == [(0,)]


def test_pinned_settings_come_back_after_a_plan_changed_them(pg: Databases) -> None:
    url = pg.new("pin")
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET lock_timeout = '1s'; SET statement_timeout = '7s'")
        sql = ("DO $$ BEGIN PERFORM set_config('search_path', 'pg_catalog', false); "
               "PERFORM set_config('lock_timeout', '0', false); "
               "PERFORM set_config('session_replication_role', 'replica', false); END $$;\n"
               "CREATE INDEX CONCURRENTLY ix_gate ON pg_temp_probe (a);\n")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE public.pg_temp_probe (a int)")
        steps = plan_steps(sql.replace("pg_temp_probe", "public.pg_temp_probe"))
        seen = []
        run_steps(conn, steps, after_statement=lambda _s: seen.append(_settings(conn)))
        # After the DO block (same step) its changes stand; the next step starts pinned.
        assert seen[0] == ("pg_catalog", "0", "replica")
        assert seen[1] == ("public", "1s", "origin")
    finally:
        conn.close()


def _settings(conn: psycopg2.extensions.connection) -> tuple[str, str, str]:
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('search_path'), current_setting('lock_timeout'), "
                    "current_setting('session_replication_role')")
        return cur.fetchone()


def test_check_refuses_a_plan_that_changes_the_session_and_asks_for_unverified_approvals(
    pg: Databases, project: Path
) -> None:
    plan = write_plan(project, pg, "SET lock_timeout = 0;\nCOMMENT ON TABLE public.users "
                      "IS 'people';", "timeout off", approve=True)
    done = run_invoke(project, "check")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout + done.stderr
    line = plan.read_text().splitlines().index("SET lock_timeout = 0;") + 1
    assert f"{plan.name}:{line}: a plan must not change the session" in out, out
    assert "SET lock_timeout" in out and "SET LOCAL" in out

    plan.unlink()
    write_plan(project, pg, "COMMENT ON TABLE public.users IS 'people';\n"
               "UPDATE public.users SET xp = 0 WHERE xp IS NULL;", "backfill", approve=False)
    done = run_invoke(project, "check")
    # The models do not have this plan's comment: drift (4) outranks the hazard (3).
    assert done.returncode == 4, done.stdout + done.stderr
    assert "1 unapproved hazard(s)" in done.stdout
    assert "UNVERIFIED update \"public\".\"users\": UPDATE public.users SET xp = 0" in done.stdout


RESUMED_PLAN = """\
set check_function_bodies = off;
CREATE FUNCTION public.deck_total() RETURNS bigint LANGUAGE sql
    AS $$ SELECT count(*) FROM public.deck_totals $$;
CREATE INDEX CONCURRENTLY ix_flashcards_gate ON public.flashcards (hint);
CREATE FUNCTION public.deck_total2() RETURNS bigint LANGUAGE sql
    AS $$ SELECT count(*) FROM public.deck_totals $$;
ALTER TABLE public.decks ADD COLUMN resumed text;
CREATE TABLE public.deck_totals (n int);
"""


def test_apply_resumes_a_plan_with_the_settings_its_first_steps_made(
    pg: Databases, project: Path
) -> None:
    url = pg.new("resume_apply")
    apply_plans(load_config(project), target=url)
    add_plan(project, pg, RESUMED_PLAN, "resumed settings")
    holder = _hold_lock(url)
    try:  # steps 1 and 2 commit, step 3 cannot get its lock: the run stops part-way
        with pytest.raises(DeployError) as caught:
            apply_plans(load_config(project), target=url, lock_timeout="200ms", retries=1)
        assert "resumes at step 3" in caught.value.message
    finally:
        holder.close()
    # A new run, a new session: before, check_function_bodies was back on and step 3
    # failed on every re-run ("relation public.deck_totals does not exist").
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert live_fingerprint(project, url) == head(project)
    assert history(pg, url)[-1]["status"] == "applied"
