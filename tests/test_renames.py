"""Renames that keep data (issue 11, part 3): `info={"renamed_from": "old"}` on a model's
column or table makes `plan` write ALTER … RENAME instead of drop + add.

Each test is a small project of its own (models in a tmp dir, plans, a real PostgreSQL target):
the first plan creates the tables, rows go in, the models change, and the second plan is
generated, proven, approved and applied like a user would.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from deploy.applier import apply_plans
from deploy.config import load_config
from deploy.errors import DeployError
from deploy.hazards import BACKWARD_INCOMPATIBLE, DELETES_DATA
from deploy.planner import make_plan
from tests.conftest import run_invoke

MODULE = "rename_models"  # unique: other tests import their own model modules

HEAD = """
from sqlalchemy import Column, ForeignKey, Index, Integer, MetaData, Table, Text

metadata = MetaData()

decks = Table(
    "decks", metadata,
    Column("id", Integer, primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text),
    Index("ix_decks_title", "title"),
)

cards = Table(
    "cards", metadata,
    Column("id", Integer, primary_key=True),
    Column("deck_id", Integer, ForeignKey("decks.id")),
    Column("front", Text),
)
"""

ROWS = """
INSERT INTO decks (title, description) VALUES ('a', 'first'), ('b', NULL), ('c', 'third');
INSERT INTO cards (deck_id, front) VALUES (1, 'x'), (3, 'y');
"""


def write_project(root: Path, models: str, major: int = 15) -> Path:
    """A project whose models are `models` (plans in root/plans, local scratch)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""
        [tool.deploy]
        metadata = "{MODULE}:metadata"
        sql = "sql"
        plans = "plans"
        snapshot = "schema.sql"
        postgres = {major}
        scratch = "local"
    """))
    (root / "plans").mkdir(exist_ok=True)
    set_models(root, models)
    return root


def set_models(root: Path, models: str) -> None:
    (root / f"{MODULE}.py").write_text(textwrap.dedent(models))


def approve(path: Path) -> list[str]:
    """Approve every hazard of a plan file (as a reviewer would); the hazard texts."""
    lines = path.read_text().splitlines()
    hazards = [line[len("-- hazard: "):] for line in lines if line.startswith("-- hazard: ")]
    index = max(i for i, line in enumerate(lines) if line.startswith("-- hazard: ")) + 1
    lines[index:index] = [f"-- approve: {h} -- renamed in the models" for h in hazards]
    path.write_text("\n".join(lines) + "\n")
    return hazards


@pytest.fixture
def at_head(tmp_path, pg):
    """A project at head (first plan applied) and a target database holding rows."""
    root = write_project(tmp_path / "project", HEAD)
    config = load_config(root)
    assert make_plan(config, name="initial").status == "written"
    url = pg.new("renames")
    apply_plans(config, target=url, wait=5)
    pg.execute(url, ROWS)
    return root, url


def plan_and_apply(root: Path, url: str, name: str) -> tuple[str, list[str]]:
    """Write the next plan, approve its hazards, apply it; (plan text, hazard texts)."""
    config = load_config(root)
    result = make_plan(config, name=name)
    assert result.status == "written", result
    hazards = approve(result.plan_path) if result.hazards else []
    apply_plans(config, target=url, wait=5)
    return result.plan_path.read_text(), hazards


def test_a_renamed_column_keeps_every_value(at_head, pg):
    root, url = at_head
    before = pg.query(url, "SELECT id, title, description FROM decks ORDER BY id")
    set_models(root, HEAD.replace('Column("description", Text)',
                                  'Column("summary", Text, info={"renamed_from": "description"})'))
    # Without approval, apply refuses: the old code still reads "description".
    config = load_config(root)
    written = make_plan(config, name="rename description")
    assert [h.kind for h in written.hazards] == [BACKWARD_INCOMPATIBLE]
    refused = run_invoke(root, "apply", env={"DATABASE_URL": url})
    assert refused.returncode == 3, refused.stderr
    text = written.plan_path.read_text()
    assert "ALTER TABLE public.decks RENAME COLUMN description TO summary;" in text
    assert "drop column" not in text.lower() and "add column" not in text.lower()
    assert written.notes == []  # no "possible rename" notice: the hint said it
    hazards = approve(written.plan_path)
    assert hazards == ['BACKWARD_INCOMPATIBLE rename column "public"."decks"."description" '
                       'to "summary"']
    assert not [h for h in written.hazards if h.kind == DELETES_DATA]
    applied = run_invoke(root, "apply", env={"DATABASE_URL": url})
    assert applied.returncode == 0, applied.stderr
    assert pg.query(url, "SELECT id, title, summary FROM decks ORDER BY id") == before
    # The hint stays in the models: the next plan has nothing to do, and check passes.
    assert make_plan(config, name="again").status == "up-to-date"
    assert make_plan(config, name="again", use_cache=False).status == "up-to-date"
    checked = run_invoke(root, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The way back renames back too: rollback keeps every value as well.
    assert written.reverse_path is not None
    reverse = written.reverse_path.read_text()
    assert "ALTER TABLE public.decks RENAME COLUMN summary TO description;" in reverse
    assert "drop column" not in reverse.lower()
    approve(written.reverse_path)
    rolled = run_invoke(root, "rollback", env={"DATABASE_URL": url})
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert pg.query(url, "SELECT id, title, description FROM decks ORDER BY id") == before


def test_a_renamed_table_keeps_its_rows_sequence_index_and_keys(at_head, pg):
    root, url = at_head
    before = pg.query(url, "SELECT id, title, description FROM decks ORDER BY id")
    renamed = (HEAD.replace('"decks", metadata,', '"collections", metadata,')
               .replace('Index("ix_decks_title", "title"),',
                        'Index("ix_collections_title", "title"), '
                        'info={"renamed_from": "decks"},')
               .replace('ForeignKey("decks.id")', 'ForeignKey("collections.id")'))
    set_models(root, renamed)
    text, hazards = plan_and_apply(root, url, "decks become collections")
    body = text.lower()
    assert "alter table public.decks rename to collections;" in body
    assert "alter sequence public.decks_id_seq rename to collections_id_seq;" in body
    assert "rename constraint decks_pkey to collections_pkey;" in body
    assert "rename constraint cards_deck_id_fkey to cards_deck_id_fkey" not in body
    assert "alter index public.ix_decks_title rename to ix_collections_title;" in body
    assert "drop table" not in body and "create table" not in body
    assert "drop sequence" not in body and "create sequence" not in body
    assert "create index" not in body and "drop index" not in body
    assert 'BACKWARD_INCOMPATIBLE rename table "public"."decks" to "collections"' in hazards
    assert all(h.startswith(BACKWARD_INCOMPATIBLE) for h in hazards)
    assert pg.query(url, "SELECT id, title, description FROM collections ORDER BY id") == before
    # The serial sequence still works (its default follows the rename) and the key still
    # references the table.
    pg.execute(url, "INSERT INTO collections (title) VALUES ('d')")
    assert pg.query(url, "SELECT max(id) FROM collections") == [(4,)]
    assert pg.query(url, "SELECT count(*) FROM cards JOIN collections c ON c.id = deck_id"
                    ) == [(2,)]
    assert make_plan(load_config(root), name="again", use_cache=False).status == "up-to-date"


def test_a_table_and_its_column_renamed_at_once(at_head, pg):
    root, url = at_head
    before = pg.query(url, "SELECT id, deck_id, front FROM cards ORDER BY id")
    set_models(root, HEAD.replace('"cards", metadata,', '"flashcards", metadata,')
               .replace('Column("front", Text)',
                        'Column("question", Text, info={"renamed_from": "front"}), '
                        'info={"renamed_from": "cards"}'))
    text, _ = plan_and_apply(root, url, "cards become flashcards")
    body = text.lower()
    assert "alter table public.cards rename to flashcards;" in body
    assert "alter table public.flashcards rename column front to question;" in body
    assert "rename constraint cards_deck_id_fkey to flashcards_deck_id_fkey;" in body
    assert pg.query(url, "SELECT id, deck_id, question FROM flashcards ORDER BY id") == before


def test_a_schema_qualified_table_is_renamed_in_its_schema(tmp_path, pg):
    models = """
    from sqlalchemy import Column, Integer, MetaData, Table, Text
    metadata = MetaData()
    notes = Table("notes", metadata, Column("id", Integer, primary_key=True),
                  Column("body", Text), schema="app")
    """
    root = write_project(tmp_path / "project", models)
    (root / "sql").mkdir()
    (root / "sql" / "00_schema.sql").write_text("CREATE SCHEMA IF NOT EXISTS app;\n")
    # The schema must exist before the models' tables: create it before create_all.
    (root / f"{MODULE}.py").write_text(textwrap.dedent(models) + textwrap.dedent("""
        from sqlalchemy import DDL, event
        event.listen(metadata, "before_create", DDL("CREATE SCHEMA IF NOT EXISTS app"))
    """))
    config = load_config(root)
    assert make_plan(config, name="initial").status == "written"
    url = pg.new("schemas")
    apply_plans(config, target=url, wait=5)
    pg.execute(url, "INSERT INTO app.notes (body) VALUES ('kept')")
    (root / f"{MODULE}.py").write_text((root / f"{MODULE}.py").read_text().replace(
        'Table("notes", metadata,', 'Table("memos", metadata,').replace(
        'schema="app")', 'schema="app", info={"renamed_from": "notes"})'))
    text, _ = plan_and_apply(root, url, "notes become memos")
    assert "ALTER TABLE app.notes RENAME TO memos;" in text
    assert pg.query(url, "SELECT id, body FROM app.memos") == [(1, "kept")]


DESCRIPTION = 'Column("description", Text)'


@pytest.mark.parametrize("major", [14, 18])
def test_a_table_rename_is_planned_and_proven_on_other_majors(tmp_path, major):
    """PostgreSQL 18 keeps NOT NULL as named constraints (<table>_<column>_not_null): they
    follow the rename too; 14 is the oldest major Railway offers."""
    from deploy.scratch import find_local_binaries

    if find_local_binaries(major) is None:
        pytest.skip(f"no PostgreSQL {major} binaries here")
    root = write_project(tmp_path / "project", HEAD, major)
    config = load_config(root)
    assert make_plan(config, name="initial").status == "written"
    set_models(root, HEAD.replace('"cards", metadata,', '"flashcards", metadata,')
               .replace('Column("front", Text)',
                        'Column("question", Text, nullable=False, '
                        'info={"renamed_from": "front"}), info={"renamed_from": "cards"}'))
    # (front was nullable: the plan also sets NOT NULL, after the renames)
    result = make_plan(config, name="cards become flashcards")
    assert result.status == "written"
    body = result.sql.lower()
    # The new NOT NULL waits for the contract part; the renames open the expand part.
    expand = body.split("-- phase: contract")[0].replace("-- phase: expand", "").strip()
    assert expand.startswith("alter table public.cards rename to flashcards;")
    assert "drop table" not in body and "drop column" not in body
    assert "flashcards_deck_id_fkey" in body and "flashcards_id_seq" in body
    if major >= 18:
        assert "rename constraint cards_id_not_null to flashcards_id_not_null" in body


@pytest.mark.parametrize(("edits", "expected"), [
    ([(DESCRIPTION, 'Column("summary", Text, info={"renamed_from": "descr"})')],
     ["column 'summary'", "renamed_from", "'descr'", 'table "public"."decks"', "no such column"]),
    ([('"decks", metadata,', '"collections", metadata,'),
      ('Index("ix_decks_title", "title"),', 'info={"renamed_from": "dekcs"},'),
      ('ForeignKey("decks.id")', 'ForeignKey("collections.id")')],
     ['"collections"', "'dekcs'", "no such table", "same schema"]),
    ([(DESCRIPTION, 'Column("summary", Text, info={"renamed_from": 42})')],
     ["column 'summary'", "must be the column's previous name", "42"]),
    ([(DESCRIPTION, 'Column("summary", Text, info={"renamed_from": "description"}), '
                    'Column("abstract", Text, info={"renamed_from": "description"})')],
     ["both say", "'description'", "one new name only"]),
    ([(DESCRIPTION, DESCRIPTION + ', Column("summary", Text, info={"renamed_from": "title"})')],
     ["still define", '"title"']),
], ids=["unknown-column", "unknown-table", "not-a-string", "two-hints-one-name", "old-still-used"])
def test_invalid_hints_are_clear_errors(at_head, edits, expected):
    root, _url = at_head
    models = HEAD
    for old, new in edits:
        assert old in models
        models = models.replace(old, new)
    set_models(root, models)
    done = run_invoke(root, "plan", "--name", "bad hint")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    message = " ".join(done.stderr.split())  # the message is wrapped for the terminal
    for text in expected:
        assert text in message, (text, done.stderr)
    assert len(list((root / "plans").glob("*.sql"))) == 1  # nothing written


def test_a_bad_hint_type_is_refused_before_anything_else(tmp_path):
    root = write_project(tmp_path / "project", HEAD.replace(
        'Index("ix_decks_title", "title"),', 'info={"renamed_from": ["old"]},'))
    with pytest.raises(DeployError) as refused:
        make_plan(load_config(root), name="x")
    assert 'table "public"."decks"' in refused.value.message
    assert "must be the table's previous name" in refused.value.message


def test_the_rename_notice_points_to_the_hint_only_without_it(at_head):
    root, _url = at_head
    set_models(root, HEAD.replace('Column("description", Text)', 'Column("summary", Text)'))
    without = make_plan(load_config(root), name="x", check=True)
    # (the drop also makes the plan two-part: that note is the contract split's)
    hints = [note for note in without.notes if "renamed_from" in note]
    assert len(hints) == 1
    assert 'info={"renamed_from": "description"}' in hints[0]
    set_models(root, HEAD.replace('Column("description", Text)',
                                  'Column("summary", Text, info={"renamed_from": "description"})'))
    with_hint = make_plan(load_config(root), name="x", check=True)
    assert not [note for note in with_hint.notes if "renamed_from" in note]
    assert "RENAME COLUMN description TO summary" in with_hint.sql


def test_a_changed_hint_is_part_of_the_models_cache_key(tmp_path):
    from deploy import cache
    from deploy.desired import load_desired

    root = write_project(tmp_path / "project", HEAD)
    config = load_config(root)
    plain = cache.desired_key(config, load_desired(config))
    set_models(root, HEAD.replace('Column("description", Text)',
                                  'Column("description", Text, info={"renamed_from": "a"})'))
    first = cache.desired_key(config, load_desired(config))
    set_models(root, HEAD.replace('Column("description", Text)',
                                  'Column("description", Text, info={"renamed_from": "b"})'))
    second = cache.desired_key(config, load_desired(config))
    assert len({plain, first, second}) == 3
    set_models(root, HEAD.replace('Column("description", Text)',
                                  'Column("description", Text, info={"other": 1})'))
    assert cache.desired_key(config, load_desired(config)) == plain  # other info: same key


def test_mapped_column_info_and_table_args_info_are_read(tmp_path):
    from deploy.desired import load_desired

    root = write_project(tmp_path / "project", """
    from sqlalchemy import Text
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    class Base(DeclarativeBase):
        pass

    metadata = Base.metadata

    class Collection(Base):
        __tablename__ = "collections"
        __table_args__ = {"info": {"renamed_from": "decks"}}
        id: Mapped[int] = mapped_column(primary_key=True)
        summary: Mapped[str | None] = mapped_column(Text, info={"renamed_from": "description"})
    """)
    hints = load_desired(load_config(root)).renames
    assert [(h.kind, h.schema, h.table, h.old, h.new) for h in hints] == [
        ("table", "public", "collections", "decks", "collections"),
        ("column", "public", "collections", "description", "summary"),
    ]
    assert hints[1].model.startswith("model Collection (table ")
