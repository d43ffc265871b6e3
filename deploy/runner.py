"""Run a plan's SQL on a connection: one transaction, plus resumable non-transactional steps.

Consecutive statements that may run in a transaction form one step; a statement that
may not (CREATE INDEX CONCURRENTLY, …) is a step of its own, run in autocommit. A plan
made only of transactional statements is a single step, so it is all-or-nothing. One
exception keeps online-safe plans online: `VALIDATE CONSTRAINT` on a table the plan did not
create runs in a transaction of its own, so the strong lock its `ADD … NOT VALID` took is
released before the scan (see deploy/differ/repairs/online.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
from pglast import ast, enums
from psycopg2 import sql as pgsql

from deploy.errors import DeployError
from deploy.statements import (
    DEFAULT_SCHEMA,
    Statement,
    StatementError,
    is_concurrent_index_build,
    parse,
    split,
    transaction_boundary,
)


@dataclass(frozen=True)
class Step:
    """Statements that commit together (or one statement that cannot be in a transaction)."""

    statements: tuple[Statement, ...]
    transactional: bool


def plan_steps(body: str, filename: str = "plan") -> list[Step]:
    """Split plan SQL into steps. A syntax error, or a statement that would end the plan's
    transaction (BEGIN, COMMIT, …), is a DeployError naming file and line."""
    try:
        statements = split(body)
    except StatementError as exc:
        raise DeployError(
            f"{filename}: {exc}. Fix the SQL (PostgreSQL could not parse it) and run again."
        ) from None
    steps: list[Step] = []
    pending: list[Statement] = []
    created = created_tables(statements)
    for statement in statements:
        boundary = transaction_boundary(statement)
        if boundary:
            # A COMMIT would end the plan's transaction half-way: what ran before it stays
            # even when the plan is then rolled back, and what follows runs in autocommit.
            raise DeployError(
                f"{filename}:{statement.line}: a plan must not contain {boundary}: each plan "
                "runs in one transaction that the tool opens, verifies and commits itself "
                "(statements that cannot run in a transaction run outside it on their own). "
                "Remove the line and run again.",
                line=statement.line,
            )
        alone = validates_existing_table(statement, created)
        if statement.transactional and not alone:
            pending.append(statement)
            continue
        if pending:
            steps.append(Step(tuple(pending), True))
            pending = []
        steps.append(Step((statement,), statement.transactional))
    if pending:
        steps.append(Step(tuple(pending), True))
    return steps


def created_tables(statements: list[Statement]) -> set[tuple[str, str]]:
    """(schema, table) of every table the statements create."""
    created = set()
    for statement in statements:
        node = _node(statement)
        if isinstance(node, ast.CreateStmt) and node.relation is not None:
            created.add((node.relation.schemaname or DEFAULT_SCHEMA, node.relation.relname))
    return created


def validates_existing_table(statement: Statement, created: set[tuple[str, str]]) -> bool:
    """True for `ALTER TABLE … VALIDATE CONSTRAINT` on a table not in `created`: its scan
    must not run under the locks of the statements before it, so it commits on its own."""
    node = _node(statement)
    if not isinstance(node, ast.AlterTableStmt) or node.relation is None or not node.cmds:
        return False
    if not all(
        isinstance(cmd, ast.AlterTableCmd)
        and cmd.subtype == enums.AlterTableType.AT_ValidateConstraint
        for cmd in node.cmds
    ):
        return False
    return (node.relation.schemaname or DEFAULT_SCHEMA, node.relation.relname) not in created


def _node(statement: Statement) -> ast.Node | None:
    parsed = parse(statement.sql)
    return parsed[0].node if len(parsed) == 1 else None


# Called inside a step's transaction, after its statements: (cursor, steps done so far).
# Raising from it rolls the step back — that is how verification and history stay atomic.
BeforeCommit = Callable[[object, int], None]


def run_steps(
    conn: psycopg2.extensions.connection,
    steps: list[Step],
    *,
    filename: str = "plan",
    start: int = 0,
    before_commit: BeforeCommit | None = None,
    after_statement: Callable[[Statement], None] | None = None,
) -> None:
    """Run steps[start:] on `conn`, committing after each step.

    A failing statement rolls its step back and raises DeployError naming the file, line
    and PostgreSQL's message; psycopg2 errors from `before_commit` propagate unchanged.
    """
    for index in range(start, len(steps)):
        step = steps[index]
        if step.transactional:
            conn.autocommit = False
            try:
                with conn.cursor() as cur:
                    for statement in step.statements:
                        _execute(cur, statement, filename)
                        if after_statement:
                            after_statement(statement)
                    if before_commit:
                        before_commit(cur, index + 1)
                conn.commit()
            except BaseException:
                _rollback(conn)
                raise
        else:
            statement = step.statements[0]
            conn.autocommit = True
            with conn.cursor() as cur:
                if _prepare_concurrent_index(cur, statement):
                    _execute(cur, statement, filename)
                if after_statement:
                    after_statement(statement)
            conn.autocommit = False
            if before_commit:
                try:
                    with conn.cursor() as cur:
                        before_commit(cur, index + 1)
                    conn.commit()
                except BaseException:
                    _rollback(conn)
                    raise


def _execute(cur: object, statement: Statement, filename: str) -> None:
    try:
        cur.execute(statement.sql)  # type: ignore[attr-defined]
    except psycopg2.errors.LockNotAvailable:
        raise
    except psycopg2.errors.QueryCanceled:
        raise
    except psycopg2.Error as exc:
        message = (exc.pgerror or str(exc)).strip().splitlines()[0]
        raise StatementFailed(
            f"{filename}:{statement.line}: PostgreSQL refused the statement: {message}. Nothing "
            "of this step was kept. Fix the plan (or the database state it expects) and run again.",
            details=statement.sql,
            pgcode=exc.pgcode,
            line=statement.line,
        ) from None


class StatementFailed(DeployError):
    """A plan statement failed; carries PostgreSQL's SQLSTATE."""

    def __init__(
        self, message: str, details: str = "", pgcode: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message, details=details, line=line)
        self.pgcode = pgcode


def _prepare_concurrent_index(cur: object, statement: Statement) -> bool:
    """Make a re-run of CREATE INDEX CONCURRENTLY resumable; False means skip it.

    A killed concurrent build leaves an INVALID index behind: drop it and build again.
    A valid index of that name means an earlier run finished the build.
    """
    target = is_concurrent_index_build(statement)
    if target is None:
        return True
    schema, name = target
    cur.execute(  # type: ignore[attr-defined]
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    )
    row = cur.fetchone()  # type: ignore[attr-defined]
    if row is None:
        return True
    if row[0]:
        return False
    cur.execute(  # type: ignore[attr-defined]
        pgsql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(
            pgsql.Identifier(schema), pgsql.Identifier(name)
        )
    )
    return True


def _rollback(conn: psycopg2.extensions.connection) -> None:
    if not conn.closed:
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()
