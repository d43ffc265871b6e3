"""`invoke plan`: first plan, model changes, SQL files, hand edits, refusals, --check, --target."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest

from deploy import urls
from deploy.config import load_config
from deploy.errors import DeployError
from deploy.fingerprint import describe, fingerprint
from deploy.planner import make_plan
from deploy.plans import load_chain, load_plans, parse_plan
from deploy.proof import replay
from tests.conftest import run_invoke

DECK_DESCRIPTION = "    description: Mapped[str | None] = mapped_column(Text)\n"
ARCHIVED_AT = (
    "    archived_at: Mapped[dt.datetime | None] = mapped_column(\n"
    "        DateTime(timezone=True), comment=\"When the owner archived the deck.\"\n"
    "    )\n"
)


def edit_models(project: Path, old: str, new: str) -> None:
    """Change the copied project's models like a developer would."""
    path = project / "schema" / "models.py"
    text = path.read_text()
    assert old in text, f"models.py no longer contains {old!r}"
    path.write_text(text.replace(old, new, 1))


def add_archived_at(project: Path) -> None:
    edit_models(project, DECK_DESCRIPTION, DECK_DESCRIPTION + ARCHIVED_AT)
    models = project / "schema" / "models.py"
    if "DateTime" not in models.read_text().split("class Base")[0]:
        edit_models(project, "from sqlalchemy import ", "from sqlalchemy import DateTime, ")


def empty_fingerprint(pg) -> str:
    conn = psycopg2.connect(**urls.psycopg2_dsn(pg.new("empty")))
    try:
        return fingerprint(describe(conn))
    finally:
        conn.close()


def test_first_plan_starts_from_the_empty_schema(empty_project, pg):
    config = load_config(empty_project)
    result = make_plan(config, name="initial schema", scratch="local")
    assert result.status == "written"
    files = list((empty_project / "schema" / "plans").glob("*.sql"))
    assert len(files) == 1 and files[0].name.endswith("_initial_schema.sql")
    plan = parse_plan(files[0])
    assert plan.from_fingerprint == empty_fingerprint(pg)
    assert plan.to_fingerprint == result.to_fingerprint
    assert plan.postgres == 15
    assert 'create table "public"."flashcards"' in plan.text
    assert "COMMENT ON TABLE public.flashcards" in plan.text  # comments are planned too
    snapshot = (empty_project / "schema" / "schema.sql").read_text()
    assert result.to_fingerprint in snapshot and 'create table "public"."users"' in snapshot
    assert (empty_project / "schema" / "schema.json").is_file()

    again = make_plan(config, name="again", scratch="local")
    assert again.status == "up-to-date"
    assert len(list((empty_project / "schema" / "plans").glob("*.sql"))) == 1


def test_model_change_writes_a_plan_that_replays_onto_the_new_head(project, pg):
    config = load_config(project)
    old_head = load_chain(config.plans_dir).head
    add_archived_at(project)
    result = make_plan(config, name="add deck archive", scratch="local")
    assert result.status == "written" and result.plan_path is not None
    assert result.plan_path.name.endswith("_add_deck_archive.sql")
    plan = parse_plan(result.plan_path)
    assert plan.name == "add deck archive"
    assert plan.from_fingerprint == old_head
    assert 'add column "archived_at" timestamp with time zone' in plan.text
    assert "COMMENT ON COLUMN public.decks.archived_at IS 'When the owner archived the deck.'" in (
        plan.text
    )
    graph = load_chain(config.plans_dir)
    assert graph.head == plan.to_fingerprint
    replayed = replay(pg.server, "replay_archive", graph.chain, config.exclusions,
                      lambda _m: None)
    assert replayed.failure is None
    assert fingerprint(replayed.description) == graph.head
    assert make_plan(config, name="again", scratch="local").status == "up-to-date"


def test_a_new_sql_file_changes_the_desired_state(project):
    (project / "schema" / "sql" / "30_deck_card_counts.sql").write_text(
        "CREATE VIEW deck_card_counts AS\n"
        "SELECT deck_id, count(*) AS cards FROM flashcards GROUP BY deck_id;\n"
        "COMMENT ON VIEW deck_card_counts IS 'Cards per deck.';\n"
    )
    result = make_plan(load_config(project), name="deck card counts", scratch="local")
    assert result.status == "written"
    text = result.plan_path.read_text()
    assert 'create or replace view "public"."deck_card_counts"' in text
    assert "COMMENT ON VIEW public.deck_card_counts IS 'Cards per deck.'" in text


def test_hand_edited_rename_is_accepted_when_it_lands_on_to(project):
    config = load_config(project)
    edit_models(project, "    description: Mapped[str | None] = mapped_column(Text)",
                "    summary: Mapped[str | None] = mapped_column(Text)")
    # One part: this edit keeps every header comment, and a two-part plan's `-- expanded:`
    # would no longer hold once its body is a single rename.
    generated = make_plan(config, name="rename description", scratch="local", contract=False)
    text = generated.plan_path.read_text()
    assert 'drop column "description"' in text  # migra sees drop + add
    assert any(h.text.startswith("DELETES_DATA drop column") for h in generated.hazards)
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("-- ")
                     and not line.startswith("-- hazard") and "approve" not in line)
    generated.plan_path.write_text(
        header + '\nalter table "public"."decks" rename column "description" to "summary";\n'
    )
    # Replaying the edited plan must land on its `to`: then there is nothing left to plan.
    assert make_plan(config, name="again", scratch="local").status == "up-to-date"


def test_sql_file_is_verified_and_saved_as_the_plan_body(project, tmp_path):
    config = load_config(project)
    edit_models(project, "    description: Mapped[str | None] = mapped_column(Text)",
                "    summary: Mapped[str | None] = mapped_column(Text)")
    wrong = tmp_path / "wrong.sql"
    wrong.write_text('alter table "public"."decks" add column "summary" text;\n')
    with pytest.raises(DeployError) as refused:
        make_plan(config, name="rename", scratch="local", sql_file=wrong)
    assert "description" in refused.value.details  # the column the SQL forgot to drop
    assert not list((project / "schema" / "plans").glob("*_rename.sql"))

    rename = tmp_path / "rename.sql"
    rename.write_text('alter table "public"."decks" rename column "description" to "summary";\n')
    result = make_plan(config, name="rename", scratch="local", sql_file=rename)
    assert result.status == "written"
    assert "rename column" in result.plan_path.read_text()
    assert "BACKWARD_INCOMPATIBLE" in " ".join(h.text for h in result.hazards)


def test_a_change_the_differ_cannot_express_is_refused_not_half_written(project):
    (project / "schema" / "sql" / "40_search.sql").write_text(
        "CREATE ACCESS METHOD cards_heap TYPE TABLE HANDLER heap_tableam_handler;\n"
    )
    before = sorted((project / "schema" / "plans").iterdir())
    snapshot = (project / "schema" / "schema.sql").read_text()
    with pytest.raises(DeployError) as refused:
        make_plan(load_config(project), name="search", scratch="local")
    assert "no plan was written" in refused.value.message
    assert "access-method cards_heap" in refused.value.details
    assert "--sql-file" in refused.value.message
    assert sorted((project / "schema" / "plans").iterdir()) == before
    assert (project / "schema" / "schema.sql").read_text() == snapshot


def test_check_flag_exit_codes_and_writes_nothing(project, tmp_path):
    clean = run_invoke(project, "plan", "--check", "--scratch", "local")
    assert clean.returncode == 0, clean.stderr
    add_archived_at(project)
    summary = tmp_path / "summary.md"
    pending = run_invoke(project, "plan", "--check", "--scratch", "local",
                         env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert pending.returncode == 2, pending.stderr
    assert 'add column "archived_at"' in pending.stdout
    assert len(load_plans(project / "schema" / "plans")) == 1
    markdown = summary.read_text()
    assert markdown.startswith("### invoke plan: changes pending")
    assert "```sql" in markdown and 'add column "archived_at"' in markdown


def test_target_preview_is_read_only_with_exit_codes(project, pg):
    target = pg.new("preview")
    pg.execute(target, load_plans(project / "schema" / "plans")[0].body)
    matching = run_invoke(project, "plan", "--target", target, "--scratch", "local")
    assert matching.returncode == 0, matching.stderr
    assert "Nothing to do" in matching.stdout

    add_archived_at(project)
    older = run_invoke(project, "plan", "--target", target, "--scratch", "local",
                       "--format", "json")
    assert older.returncode == 2, older.stderr
    assert '"status": "pending"' in older.stdout and "archived_at" in older.stdout
    assert '"target_on_chain": true' in older.stdout
    columns = pg.query(target, "select column_name from information_schema.columns "
                               "where table_name = 'decks' and column_name = 'archived_at'")
    assert columns == []  # preview only: the target was not changed
    assert len(load_plans(project / "schema" / "plans")) == 1


def test_unimportable_models_give_a_clear_error(project):
    (project / "schema" / "models.py").write_text("def broken(:\n    pass\n")
    result = run_invoke(project, "plan", "--scratch", "local")
    assert result.returncode == 1
    assert "Could not import 'schema'" in result.stderr and "SyntaxError" in result.stderr


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ('postgres = "fifteen"', "must be the production server's major version"),
        ('metadata = "schema"', "must be 'module:attribute'"),
        ('colour = "blue"', "unknown keys: colour"),
        # 11: a major no machine of this project installs (14-18 may all be there).
        ('postgres = 11', "No PostgreSQL 11 server binaries"),
        ('extensions = "schema:metadata"', "must name a list of extension names"),
        ('metadata = "schema:EXTENSIONS"', "is a tuple, not a SQLAlchemy MetaData"),
    ],
    ids=["postgres-not-a-number", "metadata-without-colon", "unknown-key", "missing-binaries",
         "extensions-not-a-list", "metadata-not-metadata"],
)
def test_bad_config_gives_a_clear_error(project, setting, expected):
    path = project / "pyproject.toml"
    text = path.read_text()
    key = setting.split(" =")[0]
    lines = [line for line in text.splitlines() if not line.startswith(f"{key} =")]
    at = lines.index("[tool.deploy]") + 1
    lines.insert(at, setting)
    path.write_text("\n".join(lines) + "\n")
    result = run_invoke(project, "plan", "--check", "--scratch", "local")
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://deployer:s3cret-pw@127.0.0.1:1/app",
        "postgresql://deployer:s3cret-pw@127.0.0.1:notaport/app",
        "mysql://deployer:s3cret-pw@127.0.0.1/app",
    ],
    ids=["unreachable", "malformed-port", "not-postgres"],
)
def test_bad_target_is_a_clear_error_without_the_password(project, url):
    result = run_invoke(project, "plan", "--target", url, "--scratch", "local")
    assert result.returncode == 1
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert result.stderr.startswith("error:") or "error:" in result.stderr


def test_wrong_password_is_a_clear_error_without_the_password(project, password_pg):
    url = password_pg.url(password="not-the-password")
    result = run_invoke(project, "plan", "--target", url, "--scratch", "local")
    assert result.returncode == 1
    assert "password authentication failed" in result.stderr
    assert "not-the-password" not in result.stdout + result.stderr
    assert "The user name or password is wrong" in result.stderr
