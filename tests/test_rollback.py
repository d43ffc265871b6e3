"""Ways back (issue 12): reverse plans, `invoke rollback`, kept dropped data, and an older
deployment (Railway's rollback button) meeting a database that is ahead of its plans."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from deploy.health import healthy
from deploy.plans import load_chain, parse_plan
from deploy.reverse import reverse_path
from tests.conftest import Databases, PasswordServer, run_invoke
from tests.test_plan import add_archived_at, edit_models

EMAIL_VERIFIED = ("    email_verified_at: Mapped[dt.datetime | None] = "
                  "mapped_column(DateTime(timezone=True))\n")
DISPLAY_NAME = "    display_name: Mapped[str] = mapped_column(String(80))\n"


def approve_all(path: Path) -> None:
    """A reviewer copies each hazard line and changes one word."""
    lines = []
    for line in path.read_text().splitlines():
        lines.append(line)
        if line.startswith("-- hazard: "):
            lines.append(line.replace("-- hazard: ", "-- approve: ", 1) + " -- reviewed")
    path.write_text("\n".join(lines) + "\n")


def newest_plan(project: Path) -> Path:
    return load_chain(project / "schema" / "plans").chain[-1].path


def invoke_ok(project: Path, *args: str, code: int = 0) -> str:
    done = run_invoke(project, *args)
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout + done.stderr


def columns(pg: Databases, url: str, table: str) -> set[str]:
    return {r[0] for r in pg.query(
        url, "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
        (table,))}


def plan_change(project: Path, name: str) -> Path:
    out = invoke_ok(project, "plan", "--name", name, "--scratch", "local")
    plan = newest_plan(project)
    assert f"Wrote its reverse schema/plans/reverse/{plan.name}" in out
    return plan


def add_user(pg: Databases, url: str, email: str, **values: object) -> None:
    cols = ["email", "password_hash", "display_name", *values]
    params = (email, "x", email.split("@")[0], *values.values())
    pg.query(url, f"INSERT INTO users ({', '.join(cols)}) VALUES "
             f"({', '.join(['%s'] * len(cols))}) RETURNING id", params)


def test_plan_writes_a_proven_reverse_and_check_verifies_it(project: Path) -> None:
    add_archived_at(project)
    plan = plan_change(project, "archive decks")
    reverse = parse_plan(reverse_path(plan))
    forward = parse_plan(plan)
    assert (reverse.from_fingerprint, reverse.to_fingerprint) == (
        forward.to_fingerprint, forward.from_fingerprint)
    assert 'drop column "archived_at"' in reverse.body
    assert any("DELETES_DATA" in h for h in reverse.hazards)
    # load_chain ignores the reverse directory: still a chain of two plans.
    assert len(load_chain(project / "schema" / "plans").chain) == 2
    done = run_invoke(project, "check", "--scratch", "local")
    assert done.returncode == 0 and "reverse" not in done.stdout, done.stdout + done.stderr
    # A plan without a reverse is a note, and `plan --reverses` writes it.
    reverse_path(plan).unlink()
    out = invoke_ok(project, "check", "--scratch", "local")
    assert f"{plan.name} has no reverse" in out
    out = invoke_ok(project, "plan", "--reverses", "--scratch", "local")
    assert f"reverse/{plan.name}" in out
    assert parse_plan(reverse_path(plan)).to_fingerprint == forward.from_fingerprint
    # A hand edit that no longer lands is re-proven and refused.
    path = reverse_path(plan)
    path.write_text(path.read_text().replace('drop column "archived_at"',
                                             'add column "oops" integer'))
    out = invoke_ok(project, "check", "--scratch", "local", code=1)
    assert "does not take" in out and "Traceback" not in out


def test_add_column_rollback_and_apply_again(pg: Databases, project: Path) -> None:
    url = pg.new("rb_add")
    invoke_ok(project, "apply", "--target", url)
    add_archived_at(project)
    plan = plan_change(project, "archive decks")
    invoke_ok(project, "apply", "--target", url)
    assert "archived_at" in columns(pg, url, "decks")

    # The reverse drops a column: a reviewer must approve that before rollback runs it.
    out = invoke_ok(project, "rollback", "--target", url, code=3)
    assert "not approved" in out
    approve_all(reverse_path(plan))
    dry = invoke_ok(project, "rollback", "--target", url, "--dry-run")
    assert 'drop column "archived_at"' in dry
    assert "archived_at" in columns(pg, url, "decks")

    invoke_ok(project, "rollback", "--target", url)
    assert "archived_at" not in columns(pg, url, "decks")
    status = invoke_ok(project, "status", "--target", url, code=2)
    assert plan.name in status and "pending" in status
    rows = pg.query(url, "SELECT plan, status FROM schema_deploy.history ORDER BY id")
    assert rows[-1] == (plan.name, "rolled-back")

    invoke_ok(project, "apply", "--target", url)
    assert "archived_at" in columns(pg, url, "decks")
    invoke_ok(project, "status", "--target", url)


def test_dropped_column_comes_back_with_every_value(pg: Databases, project: Path) -> None:
    url = pg.new("rb_drop")
    invoke_ok(project, "apply", "--target", url)
    for number in range(50):
        add_user(pg, url, f"u{number}@example.org",
                 email_verified_at=None if number % 3 else f"2026-01-{number % 28 + 1:02d}")
    before = pg.query(url, "SELECT id, email_verified_at FROM users ORDER BY id")

    edit_models(project, EMAIL_VERIFIED, "")
    edit_models(project, DISPLAY_NAME, "")  # NOT NULL: the reverse must refill it first
    plan = plan_change(project, "drop verification and names")
    invoke_ok(project, "apply", "--target", url, code=3)
    approve_all(plan)
    # (--contract: the drop is the plan's contract part; this test is about what it keeps)
    out = invoke_ok(project, "apply", "--target", url, "--contract")
    assert "keeping" in out
    assert not {"email_verified_at", "display_name"} & columns(pg, url, "users")

    status = json.loads(run_invoke(project, "status", "--target", url, "--format", "json").stdout)
    kept = " ".join(status["kept"])
    assert "users.email_verified_at: 50 row(s)" in kept and "display_name" in kept

    approve_all(reverse_path(plan))
    invoke_ok(project, "rollback", "--target", url)
    after = pg.query(url, "SELECT id, email_verified_at FROM users ORDER BY id")
    assert after == before
    names = pg.query(url, "SELECT email, display_name FROM users ORDER BY email")
    assert all(email.split("@")[0] == name for email, name in names)
    assert pg.query(url, "SELECT count(*) FROM schema_deploy.kept_data") == [(0,)]


def test_an_older_deployment_leaves_an_expand_only_state_in_place(
        pg: Databases, project: Path, tmp_path: Path) -> None:
    older = tmp_path / "older"
    shutil.copytree(project, older)  # the previous commit: without the newest plan
    url = pg.new("rb_railway")
    add_archived_at(project)
    plan_change(project, "archive decks")
    invoke_ok(project, "apply", "--target", url)

    out = invoke_ok(older, "apply", "--target", url)
    assert "ahead" in out and "archive_decks" in out
    status = json.loads(run_invoke(older, "status", "--target", url, "--format", "json").stdout)
    assert status["state"] == "ahead" and status["exit_code"] == 0
    assert healthy(status)  # Railway's health check passes for the older code
    assert "archived_at" in columns(pg, url, "decks")  # the old code ignores the new column


def test_an_older_deployment_rolls_back_what_it_cannot_run_with(
        pg: Databases, project: Path, tmp_path: Path) -> None:
    older = tmp_path / "older"
    shutil.copytree(project, older)
    url = pg.new("rb_railway_drop")
    invoke_ok(project, "apply", "--target", url)
    add_user(pg, url, "kept@example.org", email_verified_at="2026-02-03")
    edit_models(project, EMAIL_VERIFIED, "")
    plan = plan_change(project, "drop verification")
    approve_all(plan)
    approve_all(reverse_path(plan))
    # records the approved reverse in history; --contract: the drop is the contract part,
    # run now as if the next deploy had come (the old code finds the column gone)
    invoke_ok(project, "apply", "--target", url, "--contract")
    assert "email_verified_at" not in columns(pg, url, "users")

    # The older code reads email_verified_at: on_ahead = auto rolls the drop back.
    out = invoke_ok(older, "apply", "--target", url)
    assert "Rolled back" in out
    assert pg.query(url, "SELECT email_verified_at::date::text FROM users") == [("2026-02-03",)]
    invoke_ok(older, "status", "--target", url)  # at the older code's head: exit 0


def set_config(project: Path, line: str) -> None:
    edit_models_file = project / "pyproject.toml"
    text = edit_models_file.read_text()
    edit_models_file.write_text(text.replace("[tool.deploy]\n", f"[tool.deploy]\n{line}\n", 1))


def test_rollback_to_a_plan_and_keeping_turned_off(pg: Databases, project: Path) -> None:
    url = pg.new("rb_to")
    first = newest_plan(project)
    invoke_ok(project, "apply", "--target", url)
    add_user(pg, url, "a@example.org", email_verified_at="2026-03-04")
    # A history table made by an older version of the tool lacks the new columns.
    pg.execute(url, "ALTER TABLE schema_deploy.history DROP COLUMN reverse_sql, "
                    "DROP COLUMN expand_only")
    invoke_ok(project, "status", "--target", url)
    add_archived_at(project)
    second = plan_change(project, "archive decks")
    approve_all(reverse_path(second))
    invoke_ok(project, "apply", "--target", url)
    set_config(project, "keep_dropped_data = false")
    edit_models(project, EMAIL_VERIFIED, "")
    third = plan_change(project, "drop verification")
    approve_all(third)
    out = invoke_ok(project, "apply", "--target", url, "--contract")  # the drop: its contract
    assert "keeping" not in out
    assert pg.query(url, "SELECT count(*) FROM schema_deploy.history "
                         "WHERE reverse_sql IS NOT NULL") == [(2,)]

    invoke_ok(project, "rollback", "--target", url, "--to", str(first))
    assert "archived_at" not in columns(pg, url, "decks")
    assert pg.query(url, "SELECT email_verified_at FROM users") == [(None,)]  # not kept
    rows = pg.query(url, "SELECT plan, status FROM schema_deploy.history WHERE status = "
                         "'rolled-back' ORDER BY id")
    assert rows == [(third.name, "rolled-back"), (second.name, "rolled-back")]
    out = invoke_ok(project, "status", "--target", url, code=2)
    assert second.name in out and third.name in out
    out = invoke_ok(project, "rollback", "--target", url, "--to", "nonsense.sql", code=1)
    assert "neither a plan file" in out


def test_kept_data_is_shown_and_forgotten_and_drift_refuses(
        pg: Databases, project: Path) -> None:
    url = pg.new("rb_forget")
    invoke_ok(project, "apply", "--target", url)
    add_user(pg, url, "b@example.org", email_verified_at="2026-03-04")
    edit_models(project, EMAIL_VERIFIED, "")
    plan = plan_change(project, "drop verification")
    approve_all(plan)
    invoke_ok(project, "apply", "--target", url, "--contract")  # the drop is its contract part
    out = invoke_ok(project, "status", "--target", url)
    assert "kept:     public.users.email_verified_at: 1 row(s)" in out
    out = invoke_ok(project, "rollback", "--target", url, "--forget")
    assert "Removed 1 row(s)" in out
    assert "kept:" not in invoke_ok(project, "status", "--target", url)

    pg.execute(url, "CREATE TABLE by_hand (id int)")
    out = invoke_ok(project, "rollback", "--target", url, code=4)
    assert "Drift" in out and "Traceback" not in out


def test_a_dropped_table_is_kept_and_restored_row_for_row(pg: Databases, tmp_path: Path) -> None:
    import psycopg2

    from deploy import keep, urls
    from deploy.config import Config
    from deploy.plans import parse_plan_text
    from deploy.runner import plan_steps, run_steps

    url = pg.new("rb_table")
    pg.execute(url, "CREATE TABLE notes (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                    "body text NOT NULL, tags text[]); INSERT INTO notes (body, tags) "
                    "SELECT 'n' || g, ARRAY['a', g::text] FROM generate_series(1, 20) g")
    before = pg.query(url, "SELECT * FROM notes ORDER BY id")
    header = "-- from: sha256:{a}\n-- to: sha256:{b}\n-- postgres: 15\n\n"
    forward = parse_plan_text(tmp_path / "p.sql", header.format(a="1" * 64, b="2" * 64)
                              + "DROP TABLE notes;\n")
    undo = parse_plan_text(tmp_path / "p.sql", header.format(a="2" * 64, b="1" * 64)
                           + "CREATE TABLE notes (id int GENERATED ALWAYS AS IDENTITY PRIMARY "
                             "KEY, body text NOT NULL, tags text[]);\n")
    config = Config(root=tmp_path)
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        conn.autocommit = True
        steps = keep.add_keeps(conn, config, forward, plan_steps(forward.body), print)
        run_steps(conn, steps)
        assert keep.summary(conn, config.history_schema)[0].startswith(
            "public.notes (whole table): 20 row(s)")
        conn.commit()
        conn.autocommit = True
        steps = keep.add_restores(conn, config, "p.sql", plan_steps(undo.body), print)
        run_steps(conn, steps)
    finally:
        conn.close()
    assert pg.query(url, "SELECT * FROM notes ORDER BY id") == before


def test_an_other_branch_goes_back_before_applying_its_own_plan(
        pg: Databases, project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(project, other)
    url = pg.new("rb_branch")
    add_archived_at(project)
    plan = plan_change(project, "archive decks")
    approve_all(reverse_path(plan))
    invoke_ok(project, "apply", "--target", url)

    # Another commit, from before that plan, with a plan of its own (expand-only).
    edit_models(other, EMAIL_VERIFIED,
                EMAIL_VERIFIED + EMAIL_VERIFIED.replace("email_verified_at", "nickname_at"))
    plan_change(other, "nickname")
    out = invoke_ok(other, "apply", "--target", url)
    assert "Rolled back" in out
    assert "archived_at" not in columns(pg, url, "decks")
    assert "nickname_at" in columns(pg, url, "users")
    invoke_ok(other, "status", "--target", url)


def test_a_reverse_the_differ_cannot_write_is_reported_as_such(project: Path) -> None:
    """Removing an enum value again needs the type re-created, which migra cannot do around
    the app's partial index on that type: the plan is written, and the note must say the
    reverse (not the plan) could not be made (it used to say "so no plan was written")."""
    models = project / "schema" / "models.py"
    models.write_text(models.read_text().replace(
        '    MASTERED = "MASTERED"\n', '    MASTERED = "MASTERED"\n    SUSPENDED = "SUSPENDED"\n'))
    out = " ".join(invoke_ok(project, "plan", "--name", "suspended status").split())
    assert "Wrote schema/plans/" in out
    assert "No reverse was written for" in out and "the way back fails:" in out
    assert "no plan was written" not in out and "--sql-file" not in out


def test_a_two_part_plan_and_its_rollback_never_print_the_password(
        password_pg: PasswordServer, project: Path) -> None:
    """Every success path this session added (contract pending, --contract, status with
    parts and deploy ids, rollback) run against a password URL: the password never shows."""
    url = password_pg.create_database("rb_password")
    outputs = [invoke_ok(project, "apply", "--target", url)]
    edit_models(project, EMAIL_VERIFIED, "")
    plan = plan_change(project, "drop verification")
    approve_all(plan)
    approve_all(reverse_path(plan))
    outputs.append(invoke_ok(project, "apply", "--target", url))
    assert "Contract pending" in outputs[-1]
    outputs.append(invoke_ok(project, "status", "--target", url))
    outputs.append(invoke_ok(project, "apply", "--target", url, "--contract"))
    outputs.append(invoke_ok(project, "status", "--target", url, "--format", "json"))
    outputs.append(invoke_ok(project, "rollback", "--target", url))
    assert "rolled back" in outputs[-1]
    for out in outputs:
        assert password_pg.password not in out
