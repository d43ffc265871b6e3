"""Each statement is parsed once per process: split, transaction boundary, concurrent-index
checks and hazards all read the same pglast tree."""

from __future__ import annotations

import uuid

import pytest
from pglast import parser

from deploy import statements
from deploy.hazards import classify
from deploy.runner import plan_steps


def test_runner_and_hazards_share_one_parse_of_a_plan(monkeypatch):
    calls: list[str] = []
    real = parser.parse_sql

    def counting(sql: str):  # noqa: ANN202 - pglast's own return type
        calls.append(sql)
        return real(sql)

    monkeypatch.setattr(parser, "parse_sql", counting)
    # A fresh text (the memo is per process and other tests parse the same plans).
    body = (
        f"-- {uuid.uuid4()}\n"
        "CREATE TABLE t (id int);\n"
        "CREATE INDEX CONCURRENTLY ix_t_id ON t (id);\n"
        "ALTER TABLE users DROP COLUMN legacy;\n"
    )
    steps = plan_steps(body)
    hazards = classify(body, use_squawk=False)
    assert [s.transactional for s in steps] == [True, False, True]
    assert statements.is_concurrent_index_build(steps[1].statements[0]) == ("public", "ix_t_id")
    assert any(h.kind == "DELETES_DATA" for h in hazards)
    assert calls == [body]


def test_the_memo_gives_equal_answers_and_a_fresh_list(monkeypatch):
    sql = f"SELECT 1; -- {uuid.uuid4()}\nSELECT 2"
    first = statements.parse(sql)
    first.clear()  # callers own the list they get
    again = statements.parse(sql)
    assert [p.statement.sql for p in again] == ["SELECT 1", "SELECT 2"]
    assert statements.split(sql) == [p.statement for p in again]


def test_forget_all_empties_the_memo_and_answers_stay_the_same(monkeypatch):
    calls: list[str] = []
    real = parser.parse_sql
    monkeypatch.setattr(parser, "parse_sql", lambda sql: calls.append(sql) or real(sql))
    sql = f"-- {uuid.uuid4()}\nCREATE INDEX CONCURRENTLY ix ON t (a);\nSELECT 2"
    first = [p.statement for p in statements.parse(sql)]
    statements.forget_all()
    assert statements.is_concurrent_index_build(first[0]) == ("public", "ix")  # parsed alone
    assert [p.statement for p in statements.parse(sql)] == first
    assert calls == [sql, first[0].sql, sql]  # the trees were gone: parsed again


# Each statement's region is scanned on its own (not the whole text at once): spans, lines
# and errors must be what scanning the whole text gave.
REGION_CASES = [
    ("/* lead */ SELECT 'é;' ; ;\n-- between\nSELECT 3 /* tail */", [("SELECT 'é;'", 1),
                                                                     ("SELECT 3", 3)]),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n"
     "select $$a;b$$ -- x;\n; select 4",
     [("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END", 1),
      ("select $$a;b$$", 2), ("select 4", 3)]),
]


@pytest.mark.parametrize(("sql", "expected"), REGION_CASES)
def test_statement_spans_come_from_each_statements_own_tokens(sql, expected):
    parsed = statements.parse(sql + f"\n-- {uuid.uuid4()}")
    assert [(p.statement.sql, p.statement.line) for p in parsed] == expected
    assert all(sql[p.start:p.end] == p.statement.sql for p in parsed)


def test_a_plan_run_leaves_no_parse_trees_of_its_body_behind(empty_project):
    """make_plan drops the memo once the body is classified: the reverse does not need the
    trees, and they were the biggest thing alive under its diff."""
    from deploy.config import load_config
    from deploy.planner import make_plan

    result = make_plan(load_config(empty_project), name="initial", scratch="local",
                       check=True, use_cache=False)
    assert result.sql.strip() and result.hazards == []
    assert result.sql not in statements._PARSED


def _fields(parsed: list[statements.ParsedStatement]) -> list[tuple]:
    return [(p.statement, p.start, p.end) for p in parsed]


def test_a_body_of_the_differs_statements_reuses_their_trees(monkeypatch):
    from deploy.differ.sqltext import parse_memo, parse_one

    tag = uuid.uuid4().hex
    stmts = [
        f'create table "public"."t_{tag}" ("id" integer not null, "note" text);',
        f"create rule r_{tag} as on insert to t_{tag} do also (select 1; select 2);",
        f"comment on table t_{tag} is 'a -- not a comment; é東京';",
        f'create index concurrently ix_{tag} on "public"."t_{tag}" ("id");',
    ]
    body = "".join(s + "\n\n" for s in stmts).rstrip("\n") + "\n"
    with parse_memo():  # as deploy.differ.diff parses them for its repairs
        trees = [parse_one(s) for s in stmts]
    calls: list[str] = []
    real = parser.parse_sql
    monkeypatch.setattr(parser, "parse_sql", lambda sql: calls.append(sql) or real(sql))
    parsed = statements.parse(body)
    assert calls == []  # located by pglast's split, no tree built again
    assert [p.node for p in parsed] == trees and all(
        p.node is t for p, t in zip(parsed, trees, strict=True))
    fresh = f"-- {tag}\n" + body  # a new text: parsed whole, as always
    statements.forget_all()
    assert _fields(statements.parse(body)) == _fields(parsed)
    assert [p.statement.transactional for p in parsed] == [True, True, True, False]
    assert len(statements.parse(fresh)) == 4


@pytest.mark.parametrize("tail", [
    "select 1 -- a comment at the very end",
    "/* block */ select 'x;y' /* after */",
    "select 'a--b' ; select\t2\n\n",
    "select 1 as \"a\u00a0\"",  # a non-ASCII space inside a quoted name
])
def test_known_statements_give_the_same_spans_as_a_whole_parse(tail, monkeypatch):
    tag = uuid.uuid4().hex
    head = [f"create table k_{tag} (a int)", f"create view v_{tag} as select a from k_{tag}",
            f"alter table k_{tag} add column b int", f"select set_config('x.y', '{tag}', true)"]
    text = "-- header\n" + ";\n\n".join(head) + ";\n" + tail
    whole = _fields(statements.parse(text))
    again = "\n" + text  # the same statements in another text: their trees are known
    expected = [(s.__class__(s.sql, s.line + 1, s.transactional), a + 1, b + 1)
                for s, a, b in whole]
    calls: list[str] = []
    real = parser.parse_sql
    monkeypatch.setattr(parser, "parse_sql", lambda sql: calls.append(sql) or real(sql))
    assert _fields(statements.parse(again)) == expected
    assert calls == []


def test_a_name_ending_in_a_non_ascii_space_is_not_cut_by_the_known_path():
    # pglast's split strips Python whitespace, which includes U+00A0; PostgreSQL reads it as
    # part of the name. Such a text is parsed whole, so the statement keeps its last character.
    tag = uuid.uuid4().hex
    text = f"create table n_{tag} (a int);\nselect 1 as a\u00a0"
    statements.parse(text)
    again = statements.parse(" " + text)
    assert again[1].statement.sql == "select 1 as a\u00a0"
    assert (again[1].start, again[1].end) == (len(text) - 13, len(text) + 1)


def test_a_text_classified_twice_runs_its_rules_once(monkeypatch):
    from deploy.hazards import core

    runs: list[str] = []
    real = core._classify_statement
    monkeypatch.setattr(core, "_classify_statement",
                        lambda p, *rest: runs.append(p.statement.sql) or real(p, *rest))
    body = (f"-- {uuid.uuid4()}\nALTER TABLE users DROP COLUMN legacy;\n"
            "UPDATE users SET a = 1;\nSELECT f(1);\n")
    first = classify(body, use_squawk=False)
    assert len(runs) == 3
    assert classify(body, use_squawk=False) == first  # as contract.split, then the planner
    assert len(runs) == 3
    assert [h.kind for h in first] == [
        "DELETES_DATA", "BACKWARD_INCOMPATIBLE", "DELETES_DATA", "UNVERIFIED"]


def test_the_differ_reuses_the_trees_of_a_plan_parsed_before(monkeypatch):
    # `invoke check` classifies a plan, then diffs the empty schema against its head: migra
    # writes the same statements again.
    from deploy.differ.sqltext import parse_fresh, parse_memo, parse_one

    tag = uuid.uuid4().hex
    body = (f"-- {tag}\n\ncreate table \"public\".\"p_{tag}\" (\"id\" integer);\n\n"
            f"alter table \"public\".\"p_{tag}\" add constraint \"c_{tag}\" check ((id > 0));\n")
    parsed = statements.parse(body)
    calls: list[str] = []
    real = parser.parse_sql
    monkeypatch.setattr(parser, "parse_sql", lambda sql: calls.append(sql) or real(sql))
    with parse_memo():
        trees = [parse_one(p.statement.sql + ";") for p in parsed]
        again = parse_one(f"create table other_{tag} (a int);")
    assert all(t is p.node for t, p in zip(trees, parsed, strict=True))
    assert calls == [f"create table other_{tag} (a int);"]
    assert again is not None
    own = parse_fresh(parsed[0].statement.sql + ";")  # a repair's own copy is still fresh
    assert own is not parsed[0].node and own == parsed[0].node
