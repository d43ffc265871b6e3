"""`invoke apply` on a real PostgreSQL: plans, history, dry runs, hazards, adoption, resuming.

The helpers at the top are shared with test_apply_reliability.py and test_status_health.py.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import psycopg2
import pytest
from conftest import Databases, run_invoke

from deploy import urls
from deploy.applier import apply_plans
from deploy.config import load_config
from deploy.errors import DeployError
from deploy.fingerprint import describe, fingerprint
from deploy.hazards import classify
from deploy.plans import load_chain, render_plan
from deploy.runner import plan_steps, run_steps
from deploy.status import read_status

_numbers = itertools.count(1)

# The committed first plan (from the empty schema), whatever it is called.
FIRST = sorted((Path(__file__).resolve().parent.parent / "schema" / "plans").glob("*.sql"))[0].name


# --- helpers --------------------------------------------------------------------------------


def live_fingerprint(project: Path, url: str) -> str:
    """The fingerprint apply sees for the database at `url`."""
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        return fingerprint(describe(conn, load_config(project).exclusions))
    finally:
        conn.close()


def head(project: Path) -> str:
    """Fingerprint at the head of the project's plans."""
    result = load_chain(load_config(project).plans_dir).head
    assert result is not None
    return result


def history(pg: Databases, url: str) -> list[dict[str, object]]:
    """The history table's rows, oldest first ([] when apply never wrote one)."""
    if not pg.query(url, "SELECT to_regclass('schema_deploy.history') IS NOT NULL")[0][0]:
        return []
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM schema_deploy.history ORDER BY id")
            columns = [d[0] for d in cur.description]
            return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def add_plan(
    project: Path, pg: Databases, sql: str, name: str, *, body: str | None = None,
    approve: bool = True,
) -> Path:
    """Write a plan on top of the project's head; its `to` is what `sql` produces.

    `body` (default: `sql`) is what the file contains, e.g. `sql` plus a slow statement
    that changes no schema. Hazards are approved unless `approve` is False.
    """
    config = load_config(project)
    url = pg.new("build")
    apply_plans(config, target=url)
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        from_fp = fingerprint(describe(conn, config.exclusions))
        run_steps(conn, plan_steps(sql, name), filename=name)
        to_fp = fingerprint(describe(conn, config.exclusions))
    finally:
        conn.close()
    text = body if body is not None else sql
    hazards = classify(text)
    rendered = render_plan(name, from_fp, to_fp, 15, hazards, text)
    if approve and hazards:
        header, _, rest = rendered.partition("\n\n")
        approvals = "\n".join(f"-- approve: {h.text} -- test" for h in hazards)
        rendered = f"{header}\n{approvals}\n\n{rest}"
    path = config.plans_dir / f"20990101T0000{next(_numbers):02d}Z_{name.replace(' ', '_')}.sql"
    path.write_text(rendered, encoding="utf-8")
    return path


def build_by_hand(pg: Databases, url: str, project: Path, upto: int = 1) -> None:
    """Run the first `upto` plans' SQL directly, as another tool (Flask-Migrate) would."""
    for plan in load_chain(load_config(project).plans_dir).chain[:upto]:
        pg.execute(url, plan.body)


# --- apply ----------------------------------------------------------------------------------


def test_fresh_database_gets_every_plan_then_is_up_to_date(pg: Databases, project: Path) -> None:
    url = pg.new("fresh")
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 0, done.stderr
    assert "applied " + FIRST in done.stdout
    assert live_fingerprint(project, url) == head(project)
    assert pg.query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")[0][0] > 5

    (row,) = history(pg, url)
    plan_file = next((project / "schema" / "plans").glob("*.sql"))
    assert row["plan"] == plan_file.name
    assert row["status"] == "applied"
    assert row["to_fingerprint"] == head(project)
    assert row["from_fingerprint"] == load_chain(load_config(project).plans_dir).start
    assert row["sql_sha256"] == hashlib.sha256(plan_file.read_bytes()).hexdigest()
    assert row["db_user"] == "postgres" and "@" in str(row["client_host"])
    assert row["started_at"] is not None and row["duration_ms"] is not None

    again = run_invoke(project, "apply", "--target", url)
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout
    assert len(history(pg, url)) == 1

    status = run_invoke(project, "status", "--target", url)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "at head" in status.stdout


def test_every_plan_of_a_chain_runs_in_order(pg: Databases, project: Path) -> None:
    second = add_plan(project, pg, "ALTER TABLE public.decks ADD COLUMN note text", "deck note")
    url = pg.new("chain")
    result = apply_plans(load_config(project), target=url)
    assert result.status == "applied"
    assert [p.filename for p in result.applied] == [
        FIRST, second.name
    ]
    assert live_fingerprint(project, url) == head(project)
    assert [r["plan"] for r in history(pg, url)] == [p.filename for p in result.applied]
    assert apply_plans(load_config(project), target=url).status == "up-to-date"


def test_database_url_and_sslmode_pass_through(pg: Databases, project: Path) -> None:
    url = pg.new("envurl")
    done = run_invoke(project, "apply", env={"DATABASE_URL": url + "&sslmode=disable"})
    assert done.returncode == 0, done.stderr
    assert live_fingerprint(project, url) == head(project)

    # The option really reaches libpq (sslmode=require over TCP: test_apply_reliability.py).
    refused = run_invoke(project, "apply", "--wait", "1", "--target", url + "&sslmode=sometimes")
    assert refused.returncode == 1
    assert "Cannot connect" in refused.stderr and "sslmode" in refused.stderr


def test_no_target_is_a_clear_error(project: Path) -> None:
    done = run_invoke(project, "apply")
    assert done.returncode == 1
    assert "DATABASE_URL" in done.stderr


def test_dry_run_prints_statements_and_changes_nothing(pg: Databases, project: Path) -> None:
    url = pg.new("dry")
    before = live_fingerprint(project, url)
    done = run_invoke(project, "apply", "--dry-run", "--target", url)
    assert done.returncode == 0, done.stderr
    assert "would apply " + FIRST in done.stdout
    assert 'create table "public"."decks"' in done.stdout
    assert live_fingerprint(project, url) == before
    assert pg.query(url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'schema_deploy'") == [
        (0,)
    ]

    as_json = run_invoke(project, "apply", "--dry-run", "--format", "json", "--target", url)
    document = json.loads(as_json.stdout)
    assert document["status"] == "dry-run"
    assert document["plans"][0]["statements"]


def test_history_records_railway_deployment_and_git_sha(
    pg: Databases, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAILWAY_DEPLOYMENT_ID", "dep-1234")
    monkeypatch.setenv("RAILWAY_GIT_COMMIT_SHA", "0123abcd")
    url = pg.new("who")
    apply_plans(load_config(project), target=url)
    (row,) = history(pg, url)
    assert (row["deployment"], row["git_sha"]) == ("dep-1234", "0123abcd")


def test_invalid_timeout_is_a_clear_error(pg: Databases, project: Path) -> None:
    url = pg.new("badtimeout")
    done = run_invoke(project, "apply", "--lock-timeout", "soon", "--target", url)
    assert done.returncode == 1
    assert "Invalid lock_timeout 'soon'" in done.stderr
    assert history(pg, url) == []


def test_unapproved_hazard_refuses_with_exit_3(pg: Databases, project: Path) -> None:
    plan = add_plan(project, pg, "ALTER TABLE public.decks DROP COLUMN description",
                    "drop description", approve=False)
    url = pg.new("hazard")
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 3, done.stderr
    assert "DELETES_DATA" in done.stderr and plan.name in done.stderr
    # Checked before anything runs: not even the first (harmless) plan was applied.
    assert live_fingerprint(project, url) == load_chain(load_config(project).plans_dir).start
    assert history(pg, url) == []

    text = plan.read_text()
    hazard_lines = [line for line in text.splitlines() if line.startswith("-- hazard: ")]
    approvals = "\n".join(
        line.replace("-- hazard: ", "-- approve: ") + " -- moved to notes" for line in hazard_lines
    )
    plan.write_text(text.replace(hazard_lines[-1], hazard_lines[-1] + "\n" + approvals, 1))
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 0, done.stderr
    assert live_fingerprint(project, url) == head(project)


# --- adopting a database built by Flask-Migrate ----------------------------------------------


_ALEMBIC = """
CREATE TABLE alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('4f2e1c9a7b3d');
"""


def test_adopts_a_flask_migrate_database_without_rerunning_ddl(
    pg: Databases, project: Path
) -> None:
    url = pg.new("alembic")
    build_by_hand(pg, url, project)
    pg.execute(url, _ALEMBIC)
    oid = pg.query(url, "SELECT 'public.decks'::regclass::oid")[0][0]

    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 0, done.stderr
    assert "Adopted" in done.stdout
    (row,) = history(pg, url)
    assert row["status"] == "adopted"
    assert row["plan"] == FIRST
    assert row["note"] == "alembic_version=4f2e1c9a7b3d"
    assert row["from_fingerprint"] == row["to_fingerprint"] == head(project)
    # Same table, not a re-created one; Alembic's bookkeeping left alone.
    assert pg.query(url, "SELECT 'public.decks'::regclass::oid")[0][0] == oid
    assert pg.query(url, "SELECT version_num FROM alembic_version") == [("4f2e1c9a7b3d",)]

    again = run_invoke(project, "apply", "--target", url)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert len(history(pg, url)) == 1
    assert run_invoke(project, "status", "--target", url).returncode == 0


def test_adoption_at_an_earlier_state_continues_with_the_rest(
    pg: Databases, project: Path
) -> None:
    second = add_plan(project, pg, "ALTER TABLE public.decks ADD COLUMN note text", "deck note")
    url = pg.new("alembic_mid")
    build_by_hand(pg, url, project, upto=1)
    pg.execute(url, _ALEMBIC)

    result = apply_plans(load_config(project), target=url)
    assert result.adopted and result.adopted_state == FIRST
    assert [p.filename for p in result.applied] == [second.name]
    assert [(r["plan"], r["status"]) for r in history(pg, url)] == [
        (FIRST, "adopted"), (second.name, "applied")
    ]
    assert live_fingerprint(project, url) == head(project)


def test_a_flask_migrate_database_that_differs_is_drift(pg: Databases, project: Path) -> None:
    url = pg.new("alembic_drift")
    build_by_hand(pg, url, project)
    pg.execute(url, _ALEMBIC + "ALTER TABLE public.decks ADD COLUMN legacy_flag boolean;")
    with pytest.raises(DeployError) as caught:
        apply_plans(load_config(project), target=url)
    assert caught.value.exit_code == 4
    assert "legacy_flag" in caught.value.details
    assert history(pg, url) == []


# --- statements that cannot run in a transaction ----------------------------------------------


_CONCURRENT = "CREATE INDEX CONCURRENTLY ix_decks_title ON public.decks (title)"


def test_concurrent_index_plan_runs_step_by_step(pg: Databases, project: Path) -> None:
    add_plan(project, pg, _CONCURRENT + ";\nCOMMENT ON TABLE public.decks IS 'decks';",
             "title index")
    url = pg.new("concurrent")
    apply_plans(load_config(project), target=url)
    assert live_fingerprint(project, url) == head(project)
    last = history(pg, url)[-1]
    assert (last["status"], last["steps_done"]) == ("applied", 2)
    assert pg.query(url, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                         "'public.ix_decks_title'::regclass") == [(True,)]


def test_invalid_index_left_by_a_failed_concurrent_build_is_rebuilt(
    pg: Databases, project: Path
) -> None:
    config = load_config(project)
    url = pg.new("invalid_index")
    apply_plans(config, target=url)
    before = live_fingerprint(project, url)
    plan = add_plan(project, pg, _CONCURRENT, "title index")

    # An open snapshot makes CREATE INDEX CONCURRENTLY wait, after it created the index
    # entry: the lock timeout then leaves an INVALID index behind.
    reader = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        reader.set_session(isolation_level="REPEATABLE READ")  # keeps its snapshot to the end
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM public.decks")
        with pytest.raises(DeployError) as caught:
            apply_plans(load_config(project), target=url, lock_timeout="200ms", retries=2)
        assert f"pid {reader.get_backend_pid()}" in caught.value.message
        assert pg.query(url, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                             "'public.ix_decks_title'::regclass") == [(False,)]
        assert live_fingerprint(project, url) != before
        status = read_status(load_config(project), target=url)
        assert status.state == "pending" and "part-way through" in str(status.matches)
    finally:
        reader.close()

    result = apply_plans(load_config(project), target=url)
    assert result.applied[0].filename == plan.name and result.applied[0].resumed_at_step == 0
    assert live_fingerprint(project, url) == head(project)
    assert history(pg, url)[-1]["status"] == "applied"
