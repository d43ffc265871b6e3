"""Replay and prove: run plan SQL in scratch databases and compare the result with a description.

The one engine behind `plan` (prove the new SQL on a copy of the replayed head), `check`
(replay the chain, prove hand-edited plans) and reverse plans. Everything here runs on a
`ScratchServer`; nothing touches a live database, so the runner sends each transactional
step as one query (run_steps(batched=True)): a failure is still named by file and line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
from sqlalchemy import Connection, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from deploy import urls
from deploy.differ import Diff, diff
from deploy.errors import DeployError
from deploy.fingerprint import (
    Description,
    Difference,
    Exclusions,
    compare,
    describe,
    fingerprint,
    format_differences,
)
from deploy.plans import Plan, short
from deploy.runner import StatementFailed, plan_steps, run_steps
from deploy.scratch import ScratchServer
from deploy.statements import StatementError
from deploy.statements import parse as parse_statements
from deploy.statements import split as split_statements

Progress = Callable[[str], None]
# migra sometimes needs a second pass (a dependency it orders late); more means it is stuck.
_MAX_ROUNDS = 3


@contextmanager
def connected(url: URL) -> Iterator[Connection]:
    """A SQLAlchemy connection to a scratch database, closed (and disposed) afterwards."""
    engine = create_engine(urls.sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def describe_url(url: URL, exclusions: Exclusions) -> Description:
    """The canonical description of the database at `url` (one short connection)."""
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))  # type: ignore[arg-type]
    try:
        return describe(conn, exclusions)
    finally:
        conn.close()


@dataclass(frozen=True)
class Replay:
    """The outcome of replaying plans into a scratch database."""

    url: URL
    description: Description  # the schema after the last plan that ran
    landed: int  # how many of the plans, in order, landed on their `to`
    failure: str | None = None  # why plan number `landed` did not (None: all landed)
    failure_line: int | None = None  # its failing statement's line, when one failed


def replay(
    server: ScratchServer,
    dbname: str,
    chain: list[Plan],
    exclusions: Exclusions,
    progress: Progress,
    *,
    template: str | None = None,
) -> Replay:
    """Create `dbname` (empty, or a copy of `template`) and run the chain in it, checking
    each plan's `from` and `to`; replay stops at the first plan that does not land."""
    url = server.create_database(dbname, template=template)
    current = describe_url(url, exclusions)
    for number, plan in enumerate(chain, start=1):
        progress(f"replaying plan {number}/{len(chain)}: {plan.filename}")
        before = fingerprint(current)
        if before != plan.from_fingerprint:
            return Replay(url, current, number - 1,
                f"{plan.filename}: expects to start from {short(plan.from_fingerprint)} but the "
                f"schema before it is {short(before)}. Delete or fix the plan, then run "
                "`invoke check`."
            )
        # A two-part plan lands twice: its expand part on `expanded`, then its contract
        # part on `to` (deploy/plans.py); each landing is checked like a one-part plan's.
        for body, want, part in _parts(plan):
            conn = psycopg2.connect(**urls.psycopg2_dsn(url))  # type: ignore[arg-type]
            try:
                if part is None or parse_statements(body):  # an empty part runs nothing
                    run_steps(conn, plan_steps(body, plan.filename), filename=plan.filename,
                              batched=True)
            except DeployError as exc:  # a refused statement, or SQL the runner will not run
                return Replay(url, current, number - 1, exc.message, exc.line)
            finally:
                conn.close()
            current = describe_url(url, exclusions)
            after = fingerprint(current)
            if after != want:
                return Replay(url, current, number - 1, _missed(plan, part, want, after))
    return Replay(url, current, len(chain))


def _parts(plan: Plan) -> list[tuple[str, str, str | None]]:
    """(body, fingerprint it must land on, part name or None for a one-part plan)."""
    if not plan.two_part or plan.expanded_fingerprint is None:
        return [(plan.body, plan.to_fingerprint, None)]
    return [(plan.expand_body, plan.expanded_fingerprint, "expand"),
            (plan.contract_body, plan.to_fingerprint, "contract")]


def _missed(plan: Plan, part: str | None, want: str, got: str) -> str:
    """Why a plan (or one of its parts) did not land where its header says."""
    if part == "expand":
        return (
            f"{plan.filename}: its expand part (above '-- phase: contract') does not land on "
            f"its 'expanded' ({short(want)}); it produces {short(got)}. The expand SQL or the "
            "'-- expanded:' line was edited after the plan was generated. Restore the plan from "
            "version control (git diff shows the edit); a wanted change of an unapplied plan "
            "is made by deleting it and running `invoke plan` again."
        )
    which = "its contract part (below '-- phase: contract')" if part == "contract" else "it"
    return (
        f"{plan.filename} does not land on its 'to' ({short(want)}); {which} "
        f"produces {short(got)}, so its SQL was probably edited after it was generated. "
        "Restore it from version control (git diff shows the edit), or change the SQL "
        "until it produces exactly its 'to' schema. `invoke plan` cannot fix this while "
        "the plan is in the chain: for an intended edit of the newest plan that no "
        "database has applied yet, save its SQL to a file, delete the plan, and run "
        "`invoke plan --name \"...\" --sql-file <that file>` (it proves the SQL against "
        "the models and writes a new header)."
    )


def prove_parts(
    server: ScratchServer,
    expand_sql: str,
    contract_sql: str,
    desired_desc: Description,
    exclusions: Exclusions,
    progress: Progress,
    *,
    template: str = "base",
) -> tuple[str | None, str]:
    """Run the expand part, then the contract part, on a copy of the base (the replayed
    head). Returns (the fingerprint between the parts, "") when both run and the result is
    the models, else (None, why not): the planner then keeps the plan in one part."""
    progress("proving the expand and contract parts on a copy of the replayed schema")
    url = server.create_database("proof_parts", template=template)
    try:
        for sql, part in ((expand_sql, "expand"), (contract_sql, "contract")):
            if not parse_statements(sql):
                expanded = fingerprint(describe_url(url, exclusions))
                continue
            conn = psycopg2.connect(**urls.psycopg2_dsn(url))  # type: ignore[arg-type]
            try:
                run_steps(conn, plan_steps(sql, f"the {part} part"), filename=part, batched=True)
            except DeployError as exc:
                return None, f"its {part} part fails when run on its own: {exc.message}"
            finally:
                conn.close()
            if part == "expand":
                expanded = fingerprint(describe_url(url, exclusions))
        residual = compare(describe_url(url, exclusions), desired_desc)
        if residual:
            return None, ("the two parts run one after the other do not reach the models: "
                          + "; ".join(str(d) for d in residual[:3]))
        return expanded, ""
    finally:
        server.drop_database("proof_parts")


def converge(
    server: ScratchServer,
    first: Diff,
    desired_url: URL,
    desired_desc: Description,
    exclusions: Exclusions,
    progress: Progress,
    *,
    online: bool = True,
    proof_url: URL | None = None,
) -> str:
    """Prove the diff on a copy of the base; add follow-up passes; refuse if it never lands.

    The SQL it returns landed: the scratch database "proof" is then at the models'
    fingerprint. `proof_url`: that copy, made by the caller (e.g. before other threads
    connect to the base: a template copy waits while anyone is connected to it)."""
    if first.unexpressed:
        raise _not_converging(first.unexpressed, first.sql)
    statements = list(first.statements)
    if proof_url is None:
        proof_url = server.create_database("proof", template="base")
    for round_number in range(1, _MAX_ROUNDS + 1):
        progress(f"proving the plan on a copy of the replayed schema (pass {round_number})")
        sql = _join(statements)
        residual = apply_and_compare(proof_url, sql, desired_desc, exclusions)
        if not residual:
            return sql
        # Run the follow-up on a fresh copy: the proof database now holds the partial result.
        with connected(proof_url) as proof_conn, connected(desired_url) as desired_conn:
            follow_up = diff(proof_conn, desired_conn, exclusions, online=online)
        server.drop_database("proof")
        proof_url = server.create_database("proof", template="base")
        if not follow_up.statements:
            raise _not_converging(residual, sql)
        statements += follow_up.statements
    raise _not_converging(residual, _join(statements))


def prove(
    server: ScratchServer,
    body: str,
    desired_desc: Description,
    exclusions: Exclusions,
    name: str,
    *,
    template: str = "base",
) -> list[Difference]:
    """Apply `body` to a copy of `template` (the base); return what still differs from the
    models. SQL that fails raises DeployError."""
    proof_url = server.create_database("proof_file", template=template)
    try:
        return apply_and_compare(proof_url, body, desired_desc, exclusions, name)
    finally:
        server.drop_database("proof_file")


class GeneratedSQLFailed(DeployError):
    """SQL the tool generated does not run (or does not parse): the differ's limit, not the
    user's. `cause` says why, without the advice, so a caller that was generating something
    other than a plan (a reverse) can give its own."""

    def __init__(self, message: str, cause: str, details: str = "") -> None:
        super().__init__(message, details=details)
        self.cause = cause


def apply_and_compare(
    url: URL, sql: str, desired_desc: Description, exclusions: Exclusions, name: str = ""
) -> list[Difference]:
    """Run `sql` on the database at `url` and compare it with the models. `name` is the
    user's file, or empty for SQL the tool generated: then a failure is the tool's fault."""
    generated = not name
    if generated:
        try:
            split_statements(sql)
        except StatementError as exc:
            raise GeneratedSQLFailed(
                f"The SQL this tool generated is not valid SQL ({exc}), so no plan was written. "
                "This is a bug in the deploy tool or its differ (migra), not in your models: "
                "please report it with the SQL below. Meanwhile, write the SQL by hand and pass "
                "it with --sql-file to have it verified and saved as the plan.",
                f"is not valid SQL ({exc})",
                details=sql,
            ) from None
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))  # type: ignore[arg-type]
    try:
        if sql.strip():  # an empty diff has nothing to run (and is no plan to refuse)
            run_steps(conn, plan_steps(sql, name or "generated SQL"), filename=name or "plan",
                      batched=True)
    except StatementFailed as exc:
        if not generated:
            raise DeployError(
                f"{name} fails on a copy of the replayed schema, so no plan was written: "
                f"{exc.message} Fix the SQL in {name} and run the same command again.",
                line=exc.line,
            ) from None
        raise GeneratedSQLFailed(
            f"The SQL this tool generated fails on a copy of the replayed schema, so no plan was "
            f"written: {exc.message} This is a limitation of the differ, not a mistake in your "
            "models; write the SQL by hand and pass it with --sql-file to have it verified and "
            "saved as the plan.",
            f"fails: {exc.message}",
            details=sql,
        ) from None
    finally:
        conn.close()
    return compare(describe_url(url, exclusions), desired_desc)


def _not_converging(residual: list[Difference], sql: str) -> DeployError:
    return DeployError(
        "The generated SQL does not reach the models exactly, so no plan was written (the "
        "differences below are kinds the differ does not generate: see \"Fingerprinted, not "
        "generated\" in the README). Save the SQL below to a file, add statements for the "
        "remaining differences, and run `invoke plan --name \"…\" --sql-file FILE`: it is "
        "verified against the models before it is written.",
        details="Remaining differences (- replayed plans, + models):\n"
        + format_differences(residual)
        + "\n\nGenerated SQL so far:\n"
        + sql,
    )


def _join(statements: list[str]) -> str:
    return "\n\n".join(statements) + "\n"


