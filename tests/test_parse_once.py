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
