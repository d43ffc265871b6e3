"""Where a live database stands relative to the plans: the one answer apply, status and check use.

A live schema is at the head, behind on the chain (plans remain), between the two parts of
a plan (expanded, its contract part pending: a later deploy runs it), part-way through a
multi-step plan an earlier apply left (which apply resumes), or off the graph: drift.
The part-way case needs the history table, so every command reads it; only this module
decides, so `apply`, `status` and `check --target` can never disagree.

Reads here run under the caller's lock/statement timeouts (see `guard_reads`): a lock held
by another session turns into a DeployError naming that session, never a hang.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg2

from deploy import history, snapshot
from deploy.config import Config
from deploy.errors import DRIFT, ERROR, DeployError
from deploy.fingerprint import Description, Difference, compare, describe, fingerprint, split_key
from deploy.lazy import lazy_module
from deploy.plans import Plan, PlanGraph, short
from deploy.runner import Step, plan_steps
from deploy.statements import DEFAULT_SCHEMA, StatementError, parse, qualified_name

if TYPE_CHECKING:
    from pglast import ast, enums
else:  # imported on first use: an apply at head parses nothing (deploy/lazy.py)
    ast = lazy_module("pglast.ast", globals())
    enums = lazy_module("pglast.enums", globals())

Connection = psycopg2.extensions.connection

HEAD = "head"
PENDING = "pending"
PART_WAY = "part-way"
DRIFTED = "drift"
NO_PLANS = "no-plans"
AHEAD = "ahead"  # past the head through reviewed plans recorded in history (an older deploy)
CONTRACT_PENDING = "contract-pending"  # at a two-part plan's `expanded`: its contract remains

# Timeouts for reads by status, /healthz and check --target: a catalog read waits at most
# this long behind another session's lock, then reports who holds it.
READ_LOCK_TIMEOUT = "3s"
READ_STATEMENT_TIMEOUT = "60s"


@dataclass(frozen=True)
class Resume:
    """A multi-step plan an earlier run left part-way, and where to continue."""

    plan: Plan
    steps_done: int
    history_id: int
    steps: int = 0  # how many steps the plan (or its part) has
    part: str | None = None  # 'expand' | 'contract' when one part of a two-part plan stopped


@dataclass(frozen=True)
class Ahead:
    """A plan this database applied (recorded in history) that the current plan files lack."""

    plan: str
    from_fingerprint: str
    to_fingerprint: str
    reverse_sql: str | None
    expand_only: bool | None


@dataclass
class Position:
    """Where the live schema stands; `path` is what apply would run, in order."""

    state: str  # head | pending | part-way | contract-pending | ahead | drift | no-plans
    live_fingerprint: str
    head: str | None
    live: Description
    path: list[Plan] = field(default_factory=list)
    resume: Resume | None = None
    matches: str | None = None  # plan whose `to` it equals, "(empty schema)", or part-way text
    # When ahead: the recorded applies to undo (newest first) and the chain state they lead to.
    ahead: list[Ahead] = field(default_factory=list)
    ahead_base: str | None = None
    # When contract-pending: the plan whose contract part remains (path[0]).
    contract: Plan | None = None

    @property
    def pending(self) -> list[str]:
        """File names of the plans apply would run (the resumed one first)."""
        return [p.filename for p in self.path]

    @property
    def waiting(self) -> list[str]:
        """Plans that wait behind a pending contract part (they start from its plan's `to`)."""
        return self.pending[1:] if self.contract is not None else []


def part_body(plan: Plan, part: str | None) -> str:
    """The SQL of one part of `plan` ('expand', 'contract'; None: the whole plan)."""
    if part == "expand":
        return plan.expand_body
    if part == "contract":
        return plan.contract_body
    return plan.body


def part_steps(plan: Plan, part: str | None) -> list[Step]:
    """The steps of one part of `plan`; [] for a part with no statement (e.g. a plan that only
    drops: its expand part is empty, its `expanded` is its `from`)."""
    body = part_body(plan, part)
    if part is not None and not has_statements(body):
        return []
    return plan_steps(body, plan.filename + (f" ({part} part)" if part else ""))


def has_statements(body: str) -> bool:
    """Whether `body` holds at least one SQL statement (not only comments)."""
    try:
        return bool(parse(body))
    except StatementError:
        return True  # let plan_steps report the syntax error with its file and line


def target_of(plan: Plan, part: str | None) -> str:
    """The fingerprint a part lands on: `expanded` for the expand part, else the plan's `to`."""
    if part == "expand" and plan.expanded_fingerprint:
        return plan.expanded_fingerprint
    return plan.to_fingerprint


def pending_contract(conn: Connection, config: Config, graph: PlanGraph,
                     live_fp: str) -> Plan | None:
    """The two-part plan whose expand part the live schema is the result of, if any.

    A `expanded` that is no state of the chain says so by itself; one that is (a plan whose
    expand part is empty starts and expands at the same schema) needs the history row.
    """
    for plan in reversed(graph.chain):
        if not plan.two_part or plan.expanded_fingerprint != live_fp:
            continue
        if not graph.known(live_fp) or history.expand_recorded(conn, config.history_schema,
                                                                 plan):
            return plan
    return None


def locate(conn: Connection, config: Config, graph: PlanGraph,
           live: Description | None = None) -> Position:
    """Place the live database (described now unless `live` is given) on the plan graph."""
    if live is None:
        live = describe(conn, config.exclusions)
    live_fp = fingerprint(live)
    position = Position(NO_PLANS, live_fp, graph.head, live)
    if graph.head is None:
        return position
    if live_fp == graph.start:
        position.matches = "(empty schema)"
    for plan in graph.chain:
        if plan.to_fingerprint == live_fp:
            position.matches = plan.filename
    contract = pending_contract(conn, config, graph, live_fp)
    if contract is not None:
        position.state = CONTRACT_PENDING
        position.contract = contract
        position.path = [contract, *(graph.path(contract.to_fingerprint) or [])]
        position.matches = f"expanded by {contract.filename} (its contract part is pending)"
        return position
    path = graph.path(live_fp)
    if path is not None:
        position.state = PENDING if path else HEAD
        position.path = path
        return position
    resume = find_resumable(conn, config, graph, live)
    if resume is None:
        ahead = find_ahead(conn, config, graph, live_fp)
        if ahead is not None:
            position.state = AHEAD
            position.ahead, position.ahead_base = ahead
            names = ", ".join(a.plan for a in reversed(position.ahead))
            position.matches = (f"ahead of these plan files by {names} (applied by a newer "
                                "deployment; recorded in history)")
            return position
        position.state = DRIFTED
        return position
    position.state = PART_WAY
    position.resume = resume
    position.path = [resume.plan, *(graph.path(resume.plan.to_fingerprint) or [])]
    part = f" ({resume.part} part)" if resume.part else ""
    position.matches = (f"part-way through {resume.plan.filename}{part} (step "
                        f"{resume.steps_done} of {resume.steps} done; apply resumes it)")
    return position


def find_ahead(conn: Connection, config: Config, graph: PlanGraph,
               live_fp: str) -> tuple[list[Ahead], str] | None:
    """The recorded applies (newest first) that led from a state of `graph` to `live_fp`,
    and that state; None when history does not explain the live schema (then it is drift)."""
    recorded = [Ahead(*row) for row in history.recorded_applies(conn, config.history_schema)]
    steps: list[Ahead] = []
    current = live_fp
    while graph.path(current) is None:
        row = next((r for r in recorded if r.to_fingerprint == current), None)
        if row is None or len(steps) >= 100:
            return None
        steps.append(row)
        current = row.from_fingerprint
    return (steps, current) if steps else None


# --- drift: one message, differences summarised by object --------------------------------


def drift_message(where: str, live_fp: str, head: str | None,
                  diffs: list[Difference] | None = None) -> str:
    """The one drift paragraph every command prints; `diffs` (head -> live), when known,
    decides whether to call it a manual change or a database that is simply behind."""
    if diffs and all(d.after is None for d in diffs):
        # Nothing of its own, only objects missing: do not blame a manual change.
        cause = ("It lacks objects the head has and has none of its own: it is behind in a way "
                 "no plan describes (older than the first plan, or a plan was undone or not "
                 "finished), not necessarily changed by hand.")
        repair = "then bring it to a state of the plans (or restore it) and run apply again."
    else:
        cause = "It was changed outside the plans, or is at a state no plan records."
        repair = "then either undo the manual change or bring it into the models and plans."
    return (
        f"Drift: the schema of {where} ({short(live_fp)}) matches no state of the plans (head "
        f"is {short(head)}), and no interrupted apply is waiting to resume on it, so `invoke "
        f"apply` refuses to touch it. {cause} To repair, run `invoke plan --target <its URL>` "
        f"to see the SQL that takes it to the models, {repair}"
    )


def differences(config: Config, graph: PlanGraph, live: Description,
                head_desc: Description | None = None) -> list[Difference] | None:
    """What differs between the head and `live` (head from `head_desc` or schema.json)."""
    if head_desc is not None:
        return compare(head_desc, live)
    return snapshot.head_differences(config, graph.head, live)


def summarise(diffs: list[Difference]) -> list[str]:
    """Differences by object: a whole missing or extra table is one line, then the details.

    The things on a table that is itself missing (or extra) are counted on its line
    instead of listed one by one.
    """
    whole: dict[tuple[str, str], Difference] = {}
    for diff in diffs:
        kind, _, name = diff.key.partition(" ")
        if kind == "relation" and (diff.before is None or diff.after is None):
            whole[tuple(split_key(name)[:2])] = diff  # type: ignore[index]
    folded: dict[tuple[str, str], dict[str, int]] = {key: {} for key in whole}
    rest: list[str] = []
    for diff in diffs:
        kind, _, name = diff.key.partition(" ")
        table = tuple(split_key(name)[:2])
        owner = whole.get(table)  # type: ignore[arg-type]
        if kind != "relation" and owner is not None and (diff.before is None) == (
                owner.before is None):
            counts = folded[table]  # type: ignore[index]
            counts[kind] = counts.get(kind, 0) + 1
            continue
        if owner is None or kind != "relation":
            rest.append(str(diff))
    lines = []
    for table, diff in whole.items():
        sign, what = ("+", "only in the live database") if diff.before is None else (
            "-", "missing from the live database")
        parts = ", ".join(f"{n} {k}{'' if n == 1 else 's'}"
                          for k, n in sorted(folded[table].items()))
        lines.append(f"{sign} {diff.key}: whole object {what}" + (f" ({parts})" if parts else ""))
    return lines + rest


def format_summary(diffs: list[Difference], limit: int = 40) -> str:
    """`summarise` as text, at most `limit` lines (then how many more)."""
    lines = summarise(diffs)
    shown = lines[:limit]
    if len(lines) > limit:
        shown.append(f"… and {len(lines) - limit} more")
    return "\n".join(shown)


def drift_error(config: Config, graph: PlanGraph, position: Position, where: str,
                major: int | None = None) -> DeployError:
    """The drift refusal (exit 4): the message, then what differs from the head when known.

    With the target's `major`, a server version the plans were never verified on is named
    as a possible cause (a difference in how that version prints the same schema).
    """
    diffs = differences(config, graph, position.live)
    details = "" if diffs is None else (
        "Objects that differ from the head of the plans (- head, + live):\n"
        + format_summary(diffs))
    verified = sorted({plan.postgres for plan in graph.chain})
    versions = "" if major is None or major in verified else (
        f" The plans were verified on PostgreSQL {', '.join(map(str, verified))} and {where} "
        f"runs PostgreSQL {major}: if the objects below differ only in how {major} prints them, "
        f"it is not a change to the schema; `invoke check` with [tool.deploy] postgres = {major} "
        "shows whether the plans land on that version.")
    return DeployError(drift_message(where, position.live_fingerprint, graph.head, diffs)
                       + versions, exit_code=DRIFT, details=details)


# --- reads that never hang ----------------------------------------------------------------


def guard_reads(conn: Connection, lock_timeout: str = READ_LOCK_TIMEOUT,
                statement_timeout: str = READ_STATEMENT_TIMEOUT) -> None:
    """Bound every later read on `conn`: a lock wait or a slow catalog query ends in an error."""
    with conn.cursor() as cur:
        cur.execute("SELECT set_config('lock_timeout', %s, false), "
                    "set_config('statement_timeout', %s, false)",
                    (lock_timeout, statement_timeout))


@contextlib.contextmanager
def reading(conn: Connection, where: str) -> Iterator[None]:
    """Turn a lock or statement timeout during a read into a DeployError naming the blocker."""
    try:
        yield
    except psycopg2.errors.LockNotAvailable:
        holders = lock_holders(conn)
        raise DeployError(
            f"Reading the schema of {where} was blocked by a lock another session holds, so it "
            f"was given up instead of waiting: {holders or 'the session has finished since'}. "
            "Wait for that session to finish (or end it with pg_terminate_backend(<pid>)), then "
            "run again.",
            exit_code=ERROR,
        ) from None
    except psycopg2.errors.QueryCanceled:
        raise DeployError(
            f"Reading the schema of {where} took longer than statement_timeout and was "
            "cancelled. The server may be overloaded; run again later.",
            exit_code=ERROR,
        ) from None


def lock_holders(conn: Connection) -> str:
    """Other sessions holding ACCESS EXCLUSIVE locks in this database, as one readable line."""
    query = """
        SELECT a.pid, a.usename, a.application_name, a.state,
               string_agg(DISTINCT l.relation::regclass::text, ', '),
               left(regexp_replace(a.query, '\\s+', ' ', 'g'), 160),
               round(extract(epoch FROM clock_timestamp() - a.xact_start))
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.granted AND l.mode = 'AccessExclusiveLock' AND l.locktype = 'relation'
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.pid <> pg_backend_pid()
        GROUP BY a.pid, a.usename, a.application_name, a.state, a.query, a.xact_start
        ORDER BY a.pid
    """
    try:
        if not conn.autocommit:
            conn.rollback()  # the timed-out read left its transaction failed
        with conn.cursor() as cur:
            cur.execute(query)  # pg_locks and pg_stat_activity take no locks: this cannot wait
            rows = cur.fetchall()
    except psycopg2.Error:
        return ""
    return "; ".join(
        f"pid {pid} (user {user}, application {app or '-'}, {state}, holding ACCESS EXCLUSIVE "
        f"on {relations}, transaction open {age}s) running: {text}"
        for pid, user, app, state, relations, text, age in rows
    )


# --- resuming multi-step plans ------------------------------------------------------------


def invalid_indexes(conn: object) -> set[tuple[str, str]]:
    """(schema, index) of every INVALID index: leftovers of killed concurrent builds."""
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(
            "SELECT n.nspname, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid"
        )
        return {(schema, name) for schema, name in cur.fetchall()}


def _indexes_named_by(step: Step) -> set[tuple[str, str]]:
    """Indexes a non-transactional step builds or drops concurrently (a crash leaves them half)."""
    if step.transactional:
        return set()
    names: set[tuple[str, str]] = set()
    for parsed in parse(step.statements[0].sql):
        node = parsed.node
        if isinstance(node, ast.IndexStmt) and node.idxname:
            names.add((node.relation.schemaname or DEFAULT_SCHEMA, node.idxname))
        elif isinstance(node, ast.DropStmt) and node.removeType == enums.ObjectType.OBJECT_INDEX:
            for obj in node.objects or ():
                names.add(qualified_name(obj))
    return names


def resume_fingerprint(desc: Description, invalid: set[tuple[str, str]], next_step: Step) -> str:
    """Fingerprint of a part-way state, blind to what a crash in `next_step` can leave behind.

    A killed CREATE/DROP INDEX CONCURRENTLY leaves an INVALID index or none (the runner
    makes the re-run idempotent), a killed REINDEX CONCURRENTLY an INVALID copy, so INVALID
    indexes and the indexes the next step touches are left out; everything else must
    match exactly before a plan is resumed.
    """
    skip = invalid | _indexes_named_by(next_step)
    kept = {}
    for key, value in desc.items():
        kind, _, name = key.partition(" ")
        if kind == "index":
            parts = split_key(name)
            if len(parts) >= 3 and (parts[0], parts[-1]) in skip:
                continue
        kept[key] = value
    return fingerprint(kept)


def find_resumable(
    conn: Connection, config: Config, graph: PlanGraph, live: Description
) -> Resume | None:
    """The plan an earlier run left part-way, if the database is exactly where it stopped."""
    rows = history.resumable_rows(conn, config.history_schema)
    if not rows:
        return None
    by_name = {p.filename: p for p in graph.chain}
    invalid = invalid_indexes(conn)
    for history_id, name, steps_done, resume_fp, sha, part in rows:
        plan = by_name.get(name)
        if plan is None or plan.sha256 != sha:
            continue  # the file changed since: resuming it would run different SQL
        steps = part_steps(plan, part)
        if steps_done >= len(steps):
            continue
        if resume_fingerprint(live, invalid, steps[steps_done]) == resume_fp:
            return Resume(plan, int(steps_done), int(history_id), len(steps), part)
    return None
