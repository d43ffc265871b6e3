"""run_steps(batched=True): scratch proofs send a transactional step as one query, and a
failing step still names its failing statement exactly as a statement-by-statement run."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions
import pytest

from deploy import urls
from deploy.runner import StatementFailed, plan_steps, run_steps


class _Recording(psycopg2.extensions.cursor):
    sent: list[str] = []

    def execute(self, query, vars=None):  # noqa: A002 - psycopg2's own name
        _Recording.sent.append(query)
        return super().execute(query, vars)


def _connect(url: str) -> psycopg2.extensions.connection:
    _Recording.sent = []
    return psycopg2.connect(cursor_factory=_Recording, **urls.psycopg2_dsn(url))


PLAN = """create table a (x int primary key);
create table b (y int) -- a comment that ends the line
;
insert into a values (1);
create index concurrently b_y on b (y);
comment on table a is '100% %(sure)s';
create table c (z int references a (x)) /* a block comment */;
"""


def _tables(pg, url: str) -> list[str]:
    return [r[0] for r in pg.query(
        url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


def test_a_step_goes_as_one_query_and_does_what_single_statements_do(pg):
    results = []
    for batched in (False, True):
        url = pg.new("batch")
        conn = _connect(url)
        try:
            run_steps(conn, plan_steps(PLAN), batched=batched)
        finally:
            conn.close()
        plan_sent = [q for q in _Recording.sent if "create" in q or "insert" in q
                     or "comment" in q]
        results.append((_tables(pg, url), pg.query(url, "SELECT x FROM a"),
                        pg.query(url, "SELECT obj_description('a'::regclass, 'pg_class')"),
                        pg.query(url, "SELECT indexname FROM pg_indexes WHERE tablename = 'b'"),
                        len(plan_sent)))
    single, batch = results[0][:4], results[1][:4]
    one_by_one, in_batches = results[0][4], results[1][4]
    assert single == batch
    assert batch[0] == ["a", "b", "c"] and batch[2] == [("100% %(sure)s",)]
    # Steps: [a, b, insert] [index concurrently] [comment, c]: 6 statements, 3 queries.
    assert (one_by_one, in_batches) == (6, 3)


@pytest.mark.parametrize("failing_line", [1, 3, 4])
def test_a_failing_batch_names_the_statement_like_an_unbatched_run(pg, failing_line):
    statements = ["create table t1 (x int);", "create table t2 (y int);",
                  "alter table t1 add column x int;", "create table t3 (z int);"]
    if failing_line == 1:
        statements[0] = "create table t1 (x no_such_type);"
    elif failing_line == 4:
        statements[3] = "create table t3 (z int references nowhere (id));"
    sql = "\n".join(statements) + "\n"
    if failing_line != 3:
        sql = sql.replace("alter table t1 add column x int;", "create table t4 (w int);")
    errors = []
    for batched in (False, True):
        url = pg.new("failing")
        conn = _connect(url)
        try:
            with pytest.raises(StatementFailed) as raised:
                run_steps(conn, plan_steps(sql, "p.sql"), filename="p.sql", batched=batched)
        finally:
            conn.close()
        assert _tables(pg, url) == []  # the step was rolled back
        errors.append((raised.value.message, raised.value.line, raised.value.details,
                       raised.value.pgcode))
    assert errors[0] == errors[1]
    assert errors[1][1] == failing_line
    assert errors[1][0].startswith(f"p.sql:{failing_line}: PostgreSQL refused the statement")


def test_hooks_see_every_statement_and_before_commit_errors_propagate(pg):
    url = pg.new("hooks")
    seen = []

    def before_commit(cur, done):
        cur.execute("select 1/0")

    conn = _connect(url)
    try:
        with pytest.raises(psycopg2.errors.DivisionByZero):
            run_steps(conn, plan_steps("create table h1 (x int);\ncreate table h2 (x int);"),
                      batched=True, after_statement=lambda s: seen.append(s.line),
                      before_commit=before_commit)
    finally:
        conn.close()
    assert seen == [1, 2]
    assert _tables(pg, url) == []
