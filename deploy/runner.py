"""Run a plan's SQL on a connection: one transaction, plus resumable non-transactional steps.

Consecutive statements that may run in a transaction form one step; a statement that
may not (CREATE INDEX CONCURRENTLY, …) is a step of its own, run in autocommit. A plan
made only of transactional statements is a single step, so it is all-or-nothing.

Every step starts from the pinned session state (deploy.session): settings a plan or a
crashed run left behind never reach the next step or plan, and a resumed plan gets back the
settings its earlier steps made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql as pgsql

from deploy import session
from deploy.errors import DeployError
from deploy.statements import (
    Statement,
    StatementError,
    is_concurrent_index_build,
    parse,
    transaction_boundary,
)


@dataclass(frozen=True)
class Step:
    """Statements that commit together (or one statement that cannot be in a transaction)."""

    statements: tuple[Statement, ...]
    transactional: bool
    # The plan's own session settings (session.PLAN_SETTINGS) made by earlier steps: run
    # again before this step, so a resumed plan runs with them too.
    replay: tuple[str, ...] = ()


def plan_steps(body: str, filename: str = "plan") -> list[Step]:
    """Split plan SQL into steps. A syntax error, a statement that would end the plan's
    transaction (BEGIN, COMMIT, …) or one that would change the session for the statements
    and plans after it (RESET ALL, SET ROLE, …) is a DeployError naming file and line."""
    try:
        parsed = parse(body)
    except StatementError as exc:
        raise DeployError(
            f"{filename}: {exc}. Fix the SQL (PostgreSQL could not parse it) and run again."
        ) from None
    steps: list[Step] = []
    pending: list[Statement] = []
    settings: list[str] = []  # PLAN_SETTINGS statements of the steps so far
    replay: tuple[str, ...] = ()
    for item in parsed:
        statement = item.statement
        refused = session.refusal(item.node)
        if refused:
            raise DeployError(
                f"{filename}:{statement.line}: a plan must not change the session's settings "
                f"for the statements and plans after it: {refused}. apply runs every plan with "
                "search_path, lock_timeout, statement_timeout and the role pinned; SET LOCAL of "
                "other settings is fine inside the plan's transaction.",
                line=statement.line,
            )
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
        if statement.transactional:
            if not pending:
                replay = tuple(settings)
            pending.append(statement)
        else:
            if pending:
                steps.append(Step(tuple(pending), True, replay))
                pending = []
            steps.append(Step((statement,), False, tuple(settings)))
        if session.plan_setting(item.node):
            settings.append(statement.sql)
    if pending:
        steps.append(Step(tuple(pending), True, replay))
    return steps


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
    pinned: Mapping[str, str] | None = None,
) -> None:
    """Run steps[start:] on `conn`, committing after each step, each from the pinned
    session state (`pinned` from session.capture(); by default, the state at the call).

    A failing statement rolls its step back and raises DeployError naming the file, line
    and PostgreSQL's message; psycopg2 errors from `before_commit` propagate unchanged.
    """
    if pinned is None:
        pinned = session.capture(conn)
    for index in range(start, len(steps)):
        step = steps[index]
        if step.transactional:
            conn.autocommit = False
            try:
                with conn.cursor() as cur:
                    session.pin(cur, pinned, step.replay)
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
                session.pin(cur, pinned, step.replay)
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
