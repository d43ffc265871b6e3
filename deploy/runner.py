"""Run a plan's SQL on a connection: one transaction, plus resumable non-transactional steps.

Consecutive statements that may run in a transaction form one step; a statement that
may not (CREATE INDEX CONCURRENTLY, …) is a step of its own, run in autocommit. A plan
made only of transactional statements is a single step, so it is all-or-nothing. One
exception keeps online-safe plans online: `VALIDATE CONSTRAINT` on a table the plan did not
create runs in a transaction of its own, so the strong lock its `ADD … NOT VALID` took is
released before the scan (see deploy/differ/repairs/online.py).

Every step starts from the pinned session state (deploy.session): settings a plan or a
crashed run left behind never reach the next step or plan, and a resumed plan gets back the
settings its earlier steps made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg2

from deploy import resumable, session
from deploy.errors import DeployError
from deploy.lazy import lazy_module
from deploy.statements import (
    DEFAULT_SCHEMA,
    Statement,
    StatementError,
    parse,
    transaction_boundary,
)

if TYPE_CHECKING:
    from pglast import ast, enums
else:  # imported on first use: an apply at head parses nothing (deploy/lazy.py)
    ast = lazy_module("pglast.ast", globals())
    enums = lazy_module("pglast.enums", globals())


@dataclass(frozen=True)
class Step:
    """Statements that commit together (or one statement that cannot be in a transaction)."""

    statements: tuple[Statement, ...]
    transactional: bool
    # The plan's own session settings (session.PLAN_SETTINGS) made by earlier steps: run
    # again before this step, so a resumed plan runs with them too.
    replay: tuple[str, ...] = ()


def plan_steps(body: str, filename: str = "plan") -> list[Step]:
    """Split plan SQL into steps. A syntax error, a body with no statement, a statement that
    would end the plan's transaction (BEGIN, COMMIT, …), one that would change the session for
    the statements and plans after it (RESET ALL, SET ROLE, …) or a non-transactional one that
    cannot resume is a DeployError naming file and line."""
    try:
        parsed = parse(body)
    except StatementError as exc:
        raise DeployError(
            f"{filename}: {exc}. Fix the SQL (PostgreSQL could not parse it) and run again."
        ) from None
    if not parsed:
        # An empty plan would "apply" without doing anything while claiming a new fingerprint.
        raise DeployError(
            f"{filename} has no SQL statements (it is empty, or only comments). "
            "Restore its SQL from version control, or delete the file if the change it stood "
            "for is not wanted."
        )
    steps: list[Step] = []
    pending: list[Statement] = []
    settings: list[str] = []  # PLAN_SETTINGS statements of the steps so far
    replay: tuple[str, ...] = ()
    created = created_tables([item.node for item in parsed])
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
        alone = validates_existing_table(item.node, created)
        if statement.transactional and not alone:
            if not pending:
                replay = tuple(settings)
            pending.append(statement)
        else:
            if not statement.transactional:
                refused = resumable.refusal(statement, item.node)
                if refused:
                    raise DeployError(
                        f"{filename}:{statement.line}: {refused}. Change the plan and run again.",
                        line=statement.line,
                    )
            if pending:
                steps.append(Step(tuple(pending), True, replay))
                pending = []
            steps.append(Step((statement,), statement.transactional, tuple(settings)))
        if session.plan_setting(item.node):
            settings.append(statement.sql)
    if pending:
        steps.append(Step(tuple(pending), True, replay))
    return steps


def created_tables(nodes: list[ast.Node]) -> set[tuple[str, str]]:
    """(schema, table) of every table the parsed statements create."""
    created = set()
    for node in nodes:
        if isinstance(node, ast.CreateStmt) and node.relation is not None:
            created.add((node.relation.schemaname or DEFAULT_SCHEMA, node.relation.relname))
    return created


def validates_existing_table(node: ast.Node, created: set[tuple[str, str]]) -> bool:
    """True for a parsed `ALTER TABLE … VALIDATE CONSTRAINT` on a table not in `created`: its
    scan must not run under the locks of the statements before it, so it commits alone."""
    if not isinstance(node, ast.AlterTableStmt) or node.relation is None or not node.cmds:
        return False
    if not all(
        isinstance(cmd, ast.AlterTableCmd)
        and cmd.subtype == enums.AlterTableType.AT_ValidateConstraint
        for cmd in node.cmds
    ):
        return False
    return (node.relation.schemaname or DEFAULT_SCHEMA, node.relation.relname) not in created


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
    batched: bool = False,
) -> None:
    """Run steps[start:] on `conn`, committing after each step, each from the pinned
    session state (`pinned` from session.capture(); by default, the state at the call).

    A failing statement rolls its step back and raises DeployError naming the file, line
    and PostgreSQL's message; psycopg2 errors from `before_commit` propagate unchanged.
    `batched` (scratch databases only, never a target: apply's progress, hooks and lock
    retries want each statement alone) sends a transactional step's statements as one
    query, and re-runs a step that fails statement by statement to name the failing one;
    `after_statement` is then called for each statement once the whole batch ran.
    """
    if start >= len(steps):
        return
    if pinned is None:
        try:
            pinned = session.capture(conn)
        except psycopg2.Error as exc:
            _raise_if_lost(exc, conn, filename, steps[start].statements[0])
            raise
    for index in range(start, len(steps)):
        step = steps[index]
        if batched and step.transactional and len(step.statements) > 1 and _run_batch(
            conn, step, pinned, filename, index, before_commit, after_statement
        ):
            continue
        if step.transactional:
            conn.autocommit = False
            try:
                with conn.cursor() as cur:
                    _pin(cur, pinned, step, filename)
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
                _pin(cur, pinned, step, filename)
                if resumable.prepare(cur, statement):  # a re-run after a crash must not fail
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


def _run_batch(
    conn: psycopg2.extensions.connection,
    step: Step,
    pinned: Mapping[str, str],
    filename: str,
    index: int,
    before_commit: BeforeCommit | None,
    after_statement: Callable[[Statement], None] | None,
) -> bool:
    """Run a transactional step as one query and commit it. False when PostgreSQL refused
    the batch: the step is then rolled back, for the caller to re-run statement by statement
    (which names the failing statement exactly as an unbatched run does)."""
    # A statement may end in a -- comment: the separator starts on a line of its own.
    script = "\n;\n".join(statement.sql for statement in step.statements)
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            _pin(cur, pinned, step, filename)
            try:
                cur.execute(script)
            except psycopg2.Error as exc:
                _raise_if_lost(exc, conn, filename, step.statements[0])
                _rollback(conn)
                return False
            if after_statement:
                for statement in step.statements:
                    after_statement(statement)
            if before_commit:
                before_commit(cur, index + 1)
        conn.commit()
    except BaseException:
        _rollback(conn)
        raise
    return True


def _pin(cur: object, pinned: Mapping[str, str], step: Step, filename: str) -> None:
    """Restore the pinned session state before a step; a lost connection is named as such."""
    try:
        session.pin(cur, pinned, step.replay)
    except psycopg2.Error as exc:
        _raise_if_lost(exc, getattr(cur, "connection", None), filename, step.statements[0])
        raise


def _raise_if_lost(exc: psycopg2.Error, conn: object, filename: str, statement: Statement) -> None:
    """Raise ConnectionLost when `exc` means the session ended while `statement` was next."""
    if not connection_lost(exc, conn):
        return
    message = (exc.pgerror or str(exc) or type(exc).__name__).strip().splitlines()[0]
    raise ConnectionLost(
        f"{filename}:{statement.line}: the connection to the database was lost while "
        f"this statement ran ({message}). That is not a fault of the plan: the server "
        "rolled back the open transaction (a statement outside a transaction may or may "
        "not have finished). Run the command again once the database accepts "
        "connections; apply starts from wherever the database now is.",
        details=statement.sql,
        pgcode=exc.pgcode,
        line=statement.line,
    ) from None


def _execute(cur: object, statement: Statement, filename: str) -> None:
    try:
        cur.execute(statement.sql)  # type: ignore[attr-defined]
    except psycopg2.errors.LockNotAvailable:
        raise
    except psycopg2.errors.QueryCanceled:
        raise
    except psycopg2.Error as exc:
        message = (exc.pgerror or str(exc) or type(exc).__name__).strip().splitlines()[0]
        _raise_if_lost(exc, getattr(cur, "connection", None), filename, statement)
        if exc.pgcode == READ_ONLY:
            raise StatementFailed(
                f"{filename}:{statement.line}: the database is read-only ({message}), so the "
                "statement could not run and nothing of this step was kept. Point the target at "
                "the primary server, or lift default_transaction_read_only, and run again.",
                details=statement.sql,
                pgcode=exc.pgcode,
                line=statement.line,
            ) from None
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


class ConnectionLost(StatementFailed):
    """The server went away (terminated backend, restart, network) while a statement ran."""


# SQLSTATE of "cannot execute … in a read-only transaction" (a standby, or
# default_transaction_read_only): the database's state, not the plan's fault.
READ_ONLY = "25006"
# Class 08 (connection exception) and the 57P0x shutdowns: the session is gone.
_SESSION_GONE = ("57P01", "57P02", "57P03")


def connection_lost(exc: BaseException, conn: object = None) -> bool:
    """True when `exc` means the session ended (not that the server refused a statement)."""
    code = getattr(exc, "pgcode", None) or ""
    if code.startswith("08") or code in _SESSION_GONE:
        return True
    if isinstance(exc, psycopg2.InterfaceError):  # "connection already closed"
        return True
    return isinstance(exc, psycopg2.OperationalError) and bool(getattr(conn, "closed", 0))


def _rollback(conn: psycopg2.extensions.connection) -> None:
    if not conn.closed:
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()
