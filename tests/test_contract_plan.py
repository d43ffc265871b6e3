"""Expand / contract plans, the planner's side (issue 11, item 2): what goes into which part,
the proof of both parts, their replay, the approval rule, and the switch that turns it off.

The end-to-end tests run `invoke plan` and `invoke check` as a user would, on a copy of the
project whose models a developer just edited, with a real PostgreSQL (tests/conftest.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg2
import pytest

from deploy import urls
from deploy.config import load_config
from deploy.contract import CONTRACT_NOTE, EXPAND_MARKER, render_body, split
from deploy.errors import DeployError
from deploy.hazards import BACKWARD_INCOMPATIBLE, DELETES_DATA, Approval, Hazard, review
from deploy.plans import CONTRACT_MARKER, PLACED, load_chain, parse_plan_text, render_plan
from deploy.reverse import load_reverse
from deploy.runner import plan_steps, run_steps
from deploy.statements import split as split_statements
from tests.conftest import run_invoke

FP = ["sha256:" + c * 64 for c in "abcdef"]
MODELS = Path("schema") / "models.py"


# --- the decision, statement by statement (no server) ---------------------------------------

CARDS = {
    "relation public.cards": "kind=r",
    "column public.cards.id": "type=bigint not-null",
    "column public.cards.n": "type=integer",
    "column public.cards.name": "type=character varying(20)",
    "column public.cards.code": "type=text",
}


def _after(**types: str) -> dict[str, str]:
    after = dict(CARDS)
    for column, value in types.items():
        after[f"column public.cards.{column}"] = value
    return after


def test_drops_and_not_null_go_to_contract_creations_and_renames_stay():
    body = "\n\n".join([
        'alter table "public"."cards" add column "tag" text;',
        'CREATE INDEX CONCURRENTLY ix_cards_n ON public.cards USING btree (n);',
        'alter table "public"."cards" drop column "code";',
        'ALTER TABLE "public"."cards" ADD CONSTRAINT "cards_n_nn_check" CHECK ("n" IS NOT NULL) '
        "NOT VALID;",
        'ALTER TABLE "public"."cards" VALIDATE CONSTRAINT "cards_n_nn_check";',
        'ALTER TABLE "public"."cards" ALTER COLUMN "n" SET NOT NULL;',
        'ALTER TABLE "public"."cards" DROP CONSTRAINT "cards_n_nn_check";',
        'alter table "public"."cards" rename column "name" to "title";',
        'drop table "public"."legacy";',
        'drop sequence "public"."legacy_seq";',
    ])
    parts = split(body, CARDS, CARDS)
    assert parts.expand == [
        'alter table "public"."cards" add column "tag" text;',
        "CREATE INDEX CONCURRENTLY ix_cards_n ON public.cards USING btree (n);",
        'alter table "public"."cards" rename column "name" to "title";',
    ]
    assert parts.contract == [
        'alter table "public"."cards" drop column "code";',
        'ALTER TABLE "public"."cards" ADD CONSTRAINT "cards_n_nn_check" CHECK ("n" IS NOT NULL) '
        "NOT VALID;",
        'ALTER TABLE "public"."cards" VALIDATE CONSTRAINT "cards_n_nn_check";',
        'ALTER TABLE "public"."cards" ALTER COLUMN "n" SET NOT NULL;',
        'ALTER TABLE "public"."cards" DROP CONSTRAINT "cards_n_nn_check";',
        'drop table "public"."legacy";',
        'drop sequence "public"."legacy_seq";',
    ]


def test_objects_the_plan_creates_and_drop_recreate_pairs_stay_in_expand():
    body = "\n\n".join([
        'create table "public"."fresh" (id int);',
        'alter table "public"."fresh" drop column "id";',
        'drop view if exists "public"."v";',
        'create view "public"."v" as select 1 as x;',
        'drop type "public"."shape";',
        "create type \"public\".\"shape\" as (x int, y int);",
        'drop index concurrently if exists "public"."ix_old";',
    ])
    assert split(body, CARDS, CARDS).contract == []


def test_only_narrowing_type_changes_wait_for_contract():
    widen = 'alter table "public"."cards" alter column "n" set data type bigint using "n"::bigint;'
    longer = ('alter table "public"."cards" alter column "name" set data type character '
              'varying(40) using "name"::character varying(40);')
    shorter = ('alter table "public"."cards" alter column "code" set data type character '
               'varying(5) using "code"::character varying(5);')
    after = _after(n="type=bigint", name="type=character varying(40)",
                   code="type=character varying(5)")
    parts = split("\n\n".join([widen, longer, shorter]), CARDS, after)
    assert parts.expand == [widen, longer]
    assert parts.contract == [shorter]


def test_a_recreated_enum_moves_to_contract_as_a_whole():
    body = "\n\n".join([
        'alter type "public"."mood" rename to "mood__old_version_to_be_dropped";',
        "create type \"public\".\"mood\" as enum ('a', 'b');",
        'alter table "public"."cards" alter column "code" drop default;',
        'alter table "public"."cards" alter column "code" set data type "public"."mood" using '
        '"code"::text::"public"."mood";',
        "alter table \"public\".\"cards\" alter column \"code\" set default 'a'::mood;",
        'drop type "public"."mood__old_version_to_be_dropped";',
        'alter table "public"."cards" add column "x" int;',
        'alter table "public"."cards" alter column "x" set default 1;',
    ])
    parts = split(body, CARDS, _after(code="type=mood"))
    assert parts.expand == ['alter table "public"."cards" add column "x" int;',
                            'alter table "public"."cards" alter column "x" set default 1;']
    assert len(parts.contract) == 6


def test_a_new_primary_key_keeps_its_not_null_in_expand():
    body = "\n\n".join([
        'ALTER TABLE "public"."cards" ADD CONSTRAINT "cards_n_nn_check" CHECK ("n" IS NOT NULL) '
        "NOT VALID;",
        'ALTER TABLE "public"."cards" VALIDATE CONSTRAINT "cards_n_nn_check";',
        'ALTER TABLE "public"."cards" ALTER COLUMN "n" SET NOT NULL;',
        'ALTER TABLE "public"."cards" DROP CONSTRAINT "cards_n_nn_check";',
        'CREATE UNIQUE INDEX CONCURRENTLY cards_pkey ON public.cards USING btree (n);',
        'alter table "public"."cards" add constraint "cards_pkey" PRIMARY KEY using index '
        '"cards_pkey";',
    ])
    assert split(body, CARDS, CARDS).contract == []


# --- file format and approval (no server) -------------------------------------------------------


def _two_part_text(statements_expand: list[str], statements_contract: list[str]) -> str:
    from deploy.hazards import classify

    body = render_body(statements_expand, statements_contract)
    return render_plan("t", FP[0], FP[2], 15, classify(body), body, expanded=FP[1])


def test_two_part_plan_renders_parses_and_needs_approval_only_for_lost_data():
    text = _two_part_text(['alter table "public"."cards" add column "tag" text;'],
                          ['alter table "public"."cards" drop column "code";'])
    lines = text.split("\n")
    assert f"-- expanded: {FP[1]}" in lines
    marker = lines.index(CONTRACT_MARKER)
    assert lines[marker + 1] == CONTRACT_NOTE
    assert lines.index(EXPAND_MARKER) < marker
    drop = 'drop column "public"."cards"."code"'
    # The reviewer sees which part each hazard is in; only the lost data is an approve line.
    assert f'-- hazard: DELETES_DATA {drop}' in lines
    assert f"{PLACED} BACKWARD_INCOMPATIBLE {drop}" in lines
    assert f"-- hazard: BACKWARD_INCOMPATIBLE {drop}" not in lines

    plan = parse_plan_text(Path("p.sql"), text)
    assert plan.two_part and plan.expanded_fingerprint == FP[1]
    assert plan.contract_line == marker + 1
    assert "add column" in plan.expand_body and "drop column" not in plan.expand_body
    assert "drop column" in plan.contract_body
    verdict = review(plan.body, plan.approvals)
    assert [h.text for h in verdict.missing] == [f"DELETES_DATA {drop}"]
    placed = [(h.kind, a.reason) for h, a in verdict.hazards if a is not None]
    assert placed == [(BACKWARD_INCOMPATIBLE, "in the contract part: runs in a later deploy, "
                       "after the old code is gone")]

    approved = text.replace(f"-- hazard: DELETES_DATA {drop}",
                            f"-- hazard: DELETES_DATA {drop}\n"
                            f"-- approve: DELETES_DATA {drop} -- moved to notes", 1)
    plan = parse_plan_text(Path("p.sql"), approved)
    assert review(plan.body, plan.approvals).missing == []


def test_backward_incompatible_in_the_expand_part_still_needs_approval():
    body = render_body(['alter table "public"."cards" drop column "code";'],
                       ['alter table "public"."cards" drop column "n";'])
    kinds = [(h.kind, h.text.split('"')[-2]) for h in review(body, []).missing]
    assert kinds == [(DELETES_DATA, "code"), (BACKWARD_INCOMPATIBLE, "code"),
                     (DELETES_DATA, "n")]
    # A one-part plan: every BACKWARD_INCOMPATIBLE needs its line, as before.
    one = 'alter table "public"."cards" drop column "n";'
    assert {h.kind for h in review(one, []).missing} == {DELETES_DATA, BACKWARD_INCOMPATIBLE}
    explicit = Approval(f"{BACKWARD_INCOMPATIBLE} drop column \"public\".\"cards\".\"n\"",
                        "ok", 3)
    assert review(body, [explicit]).unused == ()


def test_an_empty_expand_part_parses_with_the_marker_in_the_body():
    text = _two_part_text([], ['alter table "public"."cards" drop column "code";'])
    plan = parse_plan_text(Path("p.sql"), text)
    assert plan.two_part
    assert plan.contract_body.strip().endswith('drop column "code";')
    assert plan.expand_body.strip() == EXPAND_MARKER


def test_one_part_render_is_unchanged():
    hazard = Hazard(DELETES_DATA, 'DELETES_DATA drop table "public"."t"', 1)
    text = render_plan("x", FP[0], FP[1], 15, [hazard], 'drop table "public"."t";')
    assert text == (
        f"-- plan: x\n-- from: {FP[0]}\n-- to:   {FP[1]}\n-- postgres: 15\n"
        "-- Each hazard needs a reviewer's approval: copy its line, change 'hazard' to "
        "'approve', add ' -- <reason>'.\n"
        '-- hazard: DELETES_DATA drop table "public"."t"\n\ndrop table "public"."t";\n')


def test_config_contract_switch_is_read_and_checked(project: Path):
    assert load_config(project).contract is True
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace("[tool.deploy]\n", "[tool.deploy]\ncontract = false\n", 1))
    assert load_config(project).contract is False
    pyproject.write_text(text.replace("[tool.deploy]\n", '[tool.deploy]\ncontract = 0\n', 1))
    with pytest.raises(DeployError, match="contract = 0.*must be true or false"):
        load_config(project)


# --- as a user would: plan, check, replay ------------------------------------------------------


def _edit_models(project: Path, old: str, new: str) -> None:
    path = project / MODELS
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


# Deck.description: nullable, used by no view (a column the view reads cannot be dropped).
DESCRIPTION = "    description: Mapped[str | None] = mapped_column(Text)\n"
REQUIRED = "    description: Mapped[str] = mapped_column(Text)\n"


def _plan(project: Path, name: str, *extra: str):
    done = run_invoke(project, "plan", "--name", name, "--scratch", "local", *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    chain = load_chain(project / "schema" / "plans").chain
    assert len(chain) == 2
    return chain[-1], done


def _check(project: Path, *extra: str):
    return run_invoke(project, "check", "--scratch", "local", "--no-cache", *extra)


def _live_at_head_with_a_card(pg, project: Path) -> str:
    """A database at the head of the committed plans holding a user and a deck."""
    url = pg.new("live")
    done = run_invoke(project, "apply", "--target", url)
    assert done.returncode == 0, done.stdout + done.stderr
    pg.execute(url, """
        INSERT INTO users (email, password_hash, display_name)
            VALUES ('ada@example.com', 'x', 'Ada');
        INSERT INTO decks (owner_id, title, description)
            SELECT id, 'Maths', 'algebra' FROM users;
    """)
    return url


def _run_part(url: str, body: str) -> None:
    """Run one part of a plan on a database as apply's runner does."""
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        run_steps(conn, plan_steps(body, "part"))
    finally:
        conn.close()


def _old_code_writes(pg, url: str) -> None:
    """What the code still serving during the expand part does: it names `description`, and
    leaves it NULL."""
    pg.execute(url, "INSERT INTO decks (owner_id, title, description) "
                    "SELECT id, 'Physics', 'waves' FROM users")
    pg.execute(url, "INSERT INTO decks (owner_id, title) SELECT id, 'Chemistry' FROM users")


def test_dropped_column_waits_for_the_contract_part_and_still_needs_data_approval(
        project: Path, pg):
    live = _live_at_head_with_a_card(pg, project)
    _edit_models(project, DESCRIPTION, "")
    plan, done = _plan(project, "drop description")
    assert "Two parts" in done.stdout
    assert plan.two_part
    assert 'drop column "description"' in plan.contract_body
    assert "description" not in plan.expand_body
    header = plan.text[: plan.text.index(CONTRACT_MARKER)]
    drop = 'drop column "public"."decks"."description"'
    assert f"-- hazard: DELETES_DATA {drop}" in header
    assert f"{PLACED} BACKWARD_INCOMPATIBLE {drop}" in header
    assert plan.hazards == (f"DELETES_DATA {drop}",)

    # The reverse goes from 'to' straight back to 'from', in one part.
    back = load_reverse(plan)
    assert back is not None and not back.two_part
    assert (back.from_fingerprint, back.to_fingerprint) == (plan.to_fingerprint,
                                                            plan.from_fingerprint)

    # The lost data still needs a reviewer; the broken old code does not (it is placement).
    checked = _check(project)
    assert checked.returncode == 3, checked.stdout + checked.stderr
    assert f"DELETES_DATA {drop} is not approved" in checked.stdout
    assert f"BACKWARD_INCOMPATIBLE {drop} is not approved" not in checked.stdout
    assert "two parts" in checked.stdout

    path = plan.path
    path.write_text(path.read_text().replace(
        f"-- hazard: DELETES_DATA {drop}\n",
        f"-- hazard: DELETES_DATA {drop}\n-- approve: DELETES_DATA {drop} -- unused since v2\n"))
    checked = _check(project)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # On the live database: after the expand part the old code still writes its column.
    # (migra re-creates the view on decks in expand: it runs in one transaction, unseen.)
    if split_statements(plan.expand_body):
        _run_part(live, plan.expand_body)
    _old_code_writes(pg, live)
    _run_part(live, plan.contract_body)
    assert pg.query(live, "SELECT count(*) FROM information_schema.columns "
                          "WHERE table_name = 'decks' AND column_name = 'description'") == [(0,)]
    assert pg.query(live, "SELECT count(*) FROM decks") == [(3,)]


def test_new_not_null_goes_to_contract_and_check_passes_without_approval(project: Path, pg):
    live = _live_at_head_with_a_card(pg, project)
    _edit_models(project, DESCRIPTION, REQUIRED)
    plan, _ = _plan(project, "description required")
    assert plan.two_part
    assert plan.expanded_fingerprint == plan.from_fingerprint  # nothing else changed
    contract = plan.contract_body
    assert 'CHECK ("description" IS NOT NULL) NOT VALID' in contract
    assert 'ALTER COLUMN "description" SET NOT NULL' in contract
    assert "VALIDATE CONSTRAINT" in contract
    assert plan.hazards == ()  # no approve line to write
    checked = _check(project)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # The old code may leave descriptions empty until the contract part runs (nothing ran yet);
    # once its NULLs are filled, the contract part makes the column NOT NULL.
    _old_code_writes(pg, live)
    pg.execute(live, "UPDATE decks SET description = '' WHERE description IS NULL")
    _run_part(live, contract)
    assert pg.query(live, "SELECT is_nullable FROM information_schema.columns "
                          "WHERE table_name = 'decks' AND column_name = 'description'") == [("NO",)]


def test_index_foreign_key_and_enum_value_make_a_one_part_plan_check_passes(project: Path):
    _edit_models(project, '        Index("ix_flashcards_deck_id_due_at", "deck_id", "due_at"),\n',
                 '        Index("ix_flashcards_deck_id_due_at", "deck_id", "due_at"),\n'
                 '        Index("ix_flashcards_lapses", "lapses"),\n')
    _edit_models(project, DESCRIPTION, DESCRIPTION + '    origin_deck_id: Mapped[uuid.UUID | '
                 'None] = mapped_column(ForeignKey("decks.id"))\n')
    _edit_models(project, '    MASTERED = "MASTERED"\n',
                 '    MASTERED = "MASTERED"\n    SUSPENDED = "SUSPENDED"\n')
    plan, done = _plan(project, "index fk enum")
    assert not plan.two_part, plan.text
    assert plan.expanded_fingerprint is None
    body = plan.body
    assert "CREATE INDEX CONCURRENTLY ix_flashcards_lapses" in body
    assert re.search(r"(?i)foreign key .* not valid", body)
    assert re.search(r"(?i)add value if not exists 'SUSPENDED'", body)
    assert plan.hazards == ()
    assert "Two parts" not in done.stdout
    checked = _check(project)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_an_edited_expanded_fingerprint_is_reported_by_check(project: Path):
    _edit_models(project, DESCRIPTION, REQUIRED)
    plan, _ = _plan(project, "description required")
    assert plan.two_part
    wrong = "sha256:" + "0" * 64
    plan.path.write_text(plan.text.replace(f"-- expanded: {plan.expanded_fingerprint}",
                                           f"-- expanded: {wrong}"))
    checked = _check(project)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "its expand part" in checked.stdout
    assert "does not land on its 'expanded' (000000000000)" in checked.stdout


def test_no_contract_flag_and_config_give_a_one_part_plan(project: Path):
    _edit_models(project, DESCRIPTION, "")
    done = run_invoke(project, "plan", "--check", "--no-contract", "--scratch", "local")
    assert done.returncode == 2, done.stdout + done.stderr
    assert CONTRACT_MARKER not in done.stdout
    assert "hazard: BACKWARD_INCOMPATIBLE drop column" in done.stdout

    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        "[tool.deploy]\n", "[tool.deploy]\ncontract = false\n", 1))
    plan, _ = _plan(project, "drop description")
    assert not plan.two_part
    assert 'BACKWARD_INCOMPATIBLE drop column "public"."decks"."description"' in plan.hazards
    checked = _check(project)
    assert checked.returncode == 3  # the old code breaks now: a reviewer must say so


def test_the_committed_one_part_plan_still_replays(project: Path):
    [plan] = load_chain(project / "schema" / "plans").chain
    assert not plan.two_part
    checked = _check(project)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "two parts" not in checked.stdout


# --- the proof of a split ----------------------------------------------------------------------


def test_a_split_that_does_not_prove_is_refused_with_the_reason(pg):
    from deploy.fingerprint import NOTHING_EXCLUDED
    from deploy.proof import describe_url, prove_parts

    template = "cplan_split_base"  # a name on the session server, as "base" on a scratch one
    base = urls.sqlalchemy_url(pg.server.create_database(template)).replace(
        "postgresql+psycopg2://", "postgresql://", 1)
    want = pg.new("cwant")
    pg.execute(base, "CREATE TABLE t (a int, b int);")
    pg.execute(want, "CREATE TABLE t (a int, b text);")
    desired = describe_url(urls.parse_url(want), NOTHING_EXCLUDED)
    # The drop waits for contract, but the re-add in expand needs it gone first.
    expanded, why = prove_parts(pg.server, 'alter table "public"."t" add column "b" text;\n',
                                'alter table "public"."t" drop column "b";\n', desired,
                                NOTHING_EXCLUDED, lambda _m: None, template=template)
    assert expanded is None
    assert why.startswith("its expand part fails when run on its own")
    assert 'column "b" of relation "t" already exists' in why

    expanded, why = prove_parts(pg.server, "", 'alter table "public"."t" drop column "b";\n'
                                'alter table "public"."t" add column "b" text;\n', desired,
                                NOTHING_EXCLUDED, lambda _m: None, template=template)
    assert why == ""
    assert expanded == fingerprint_of(base)


def fingerprint_of(url: str) -> str:
    from deploy.fingerprint import NOTHING_EXCLUDED, fingerprint
    from deploy.proof import describe_url

    return fingerprint(describe_url(urls.parse_url(url), NOTHING_EXCLUDED))


def test_a_hand_written_sql_file_with_the_marker_becomes_a_proven_two_part_plan(
        project: Path, tmp_path: Path):
    _edit_models(project, DESCRIPTION, "")
    sql = tmp_path / "drop.sql"
    sql.write_text(f'{CONTRACT_MARKER}\nalter table "public"."decks" drop column '
                   '"description";\n')
    plan, done = _plan(project, "drop", "--sql-file", str(sql))
    assert plan.two_part and plan.expanded_fingerprint == plan.from_fingerprint
    assert "has two parts" in done.stdout
    drop = 'drop column "public"."decks"."description"'
    assert plan.hazards == (f"DELETES_DATA {drop}",)
