"""Each statement is parsed once per process: split, transaction boundary, concurrent-index
checks and hazards all read the same pglast tree."""

from __future__ import annotations

import uuid

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
