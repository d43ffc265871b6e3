"""`apply` and `status`: run exactly the reviewed plans on a live database.

Needs only the target database and the plan files: no Docker, no scratch server, no
import of the models. Per run: connect (with backoff) → advisory lock → fingerprint →
path of plans to head → each plan in one transaction with lock/statement timeouts,
verified against its `to` before it commits, and recorded in the history table.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg2
from psycopg2 import sql as pgsql

from deploy import snapshot
from deploy import target as target_db
from deploy import urls
from deploy.config import Config
from deploy.errors import DRIFT, ERROR, UNAPPROVED_HAZARD, DeployError
from deploy.fingerprint import Description, Exclusions, compare, describe, fingerprint
from deploy.hazards import classify, unapproved
from deploy.plans import Plan, PlanGraph, build_graph, load_plans, require_plans_dir, short
from deploy.runner import StatementFailed, plan_steps, run_steps
from deploy.statements import referenced_relations

Progress = Callable[[str], None]

# One advisory lock key for every apply against a database: "schema-deploy" as a bigint.
LOCK_KEY = int.from_bytes(b"schdeplo", "big") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class AppliedPlan:
    """A plan this run applied (or would apply, in a dry run)."""

    filename: str
    from_fingerprint: str
    to_fingerprint: str
    seconds: float
    statements: tuple[str, ...] = ()


@dataclass
class ApplyResult:
    """What `apply` did."""

    status: str  # "up-to-date" | "applied" | "dry-run"
    target: str
    live_fingerprint: str
    head: str | None
    applied: list[AppliedPlan] = field(default_factory=list)
    adopted: bool = False


def exclusions_for(config: Config) -> Exclusions:
    """Fingerprints ignore the history schema and the configured `exclude` tables."""
    return Exclusions(schemas=(config.history_schema,), tables=config.exclude)


def load_chain(config: Config) -> PlanGraph:
    """The plan graph, refusing forks and orphans (apply must never guess an order)."""
    require_plans_dir(config.plans_dir)
    graph = build_graph(load_plans(config.plans_dir))
    problems = graph.problems()
    if problems:
        raise DeployError(" ".join(problems))
    return graph


def drift_error(config: Config, graph: PlanGraph, live: Description, where: str) -> DeployError:
    """The drift refusal: what differs from the head (when known) and how to repair."""
    live_fp = fingerprint(live)
    head = snapshot.load_state(config)
    details = ""
    if head is not None and fingerprint(head) == graph.head:
        differences = compare(head, live)
        lines = [str(d) for d in differences[:40]]
        if len(differences) > 40:
            lines.append(f"… and {len(differences) - 40} more")
        details = "Objects that differ from the head of the plans (- head, + live):\n" + "\n".join(
            lines
        )
    return DeployError(
        f"Drift: the schema of {where} ({short(live_fp)}) matches no state of the reviewed plans "
        f"(head is {short(graph.head)}), so nothing was applied. Someone changed it outside the "
        "plans. To repair, run `invoke plan --target <its URL>` to see the SQL that takes it to "
        "the models, then either undo the manual change or bring it into the models and plans.",
        exit_code=DRIFT,
        details=details,
    )


def check_approvals(plans: list[Plan]) -> None:
    """Refuse (exit 3) when a plan about to run has a hazard without an `-- approve:` line."""
    missing = []
    for plan in plans:
        for hazard in unapproved(classify(plan.body), list(plan.approvals)):
            missing.append(f"{plan.filename}:{hazard.line}: {hazard.text}")
    if missing:
        raise DeployError(
            f"{len(missing)} hazard(s) in the plans to apply are not approved, so nothing was "
            "applied. A reviewer approves one by adding '-- approve: <the hazard text> -- "
            "<reason>' to the plan header (then `invoke check` passes).",
            exit_code=UNAPPROVED_HAZARD,
            details="\n".join(missing),
        )


def apply_plans(
    config: Config,
    *,
    target: str | None = None,
    wait: float = 30.0,
    lock_timeout: str | None = None,
    statement_timeout: str | None = None,
    retries: int = 5,
    dry_run: bool = False,
    lock_wait: float = 600.0,
    progress: Progress = lambda _msg: None,
) -> ApplyResult:
    """Bring the target to the head of the plans; exactly the reviewed SQL, nothing else."""
    graph = load_chain(config)
    exclusions = exclusions_for(config)
    url = target_db.resolve_target(target)
    where = urls.describe(url)
    conn = target_db.connect(url, wait=wait, read_only=dry_run, progress=progress)
    try:
        conn.autocommit = True
        if not dry_run:
            _take_lock(conn, lock_wait, progress)
            _ensure_history(conn, config.history_schema)
            # A dead client must not keep its locks for the rest of a slow statement.
            _set(conn, "client_connection_check_interval", "1s", optional=True)
        live = describe(conn, exclusions)
        live_fp = fingerprint(live)
        result = ApplyResult("up-to-date", where, live_fp, graph.head)
        if graph.head is None:
            progress("no plans yet: nothing to apply")
            return result
        path = graph.path(live_fp)
        resumed = None if dry_run or path is not None else _resumable(conn, config, graph)
        if path is None and resumed is None:
            raise drift_error(config, graph, live, where)
        if resumed is not None:
            plan, steps_done = resumed
            rest = graph.path(plan.to_fingerprint)
            path = [plan, *(rest or [])]
        assert path is not None
        check_approvals(path)
        if dry_run:
            result.status = "dry-run"
            for plan in path:
                statements = tuple(s.sql for st in plan_steps(plan.body, plan.filename)
                                   for s in st.statements)
                result.applied.append(
                    AppliedPlan(plan.filename, plan.from_fingerprint, plan.to_fingerprint, 0.0,
                                statements)
                )
            return result
        if not path:
            _record_adoption_if_new(conn, config, graph, live_fp, progress)
            progress(f"{where} is up to date ({short(live_fp)})")
            return result
        result.adopted = _record_adoption_if_new(conn, config, graph, live_fp, progress)
        _set(conn, "lock_timeout", lock_timeout or config.lock_timeout)
        _set(conn, "statement_timeout", statement_timeout or config.statement_timeout)
        for index, plan in enumerate(path):
            start_step = resumed[1] if resumed is not None and index == 0 else 0
            progress(f"applying {plan.filename} ({index + 1}/{len(path)})")
            seconds = _apply_one(conn, config, plan, exclusions, graph, retries, start_step,
                                 progress)
            result.applied.append(
                AppliedPlan(plan.filename, plan.from_fingerprint, plan.to_fingerprint, seconds)
            )
        result.status = "applied"
        return result
    finally:
        conn.close()


def _set(conn: psycopg2.extensions.connection, name: str, value: str, optional: bool = False) -> None:
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT set_config(%s, %s, false)", (name, value))
    except psycopg2.Error as exc:
        if not optional:
            raise DeployError(f"Invalid {name} {value!r}: {exc.pgerror or exc}".strip()) from None


def _take_lock(conn: psycopg2.extensions.connection, deadline_s: float, progress: Progress) -> None:
    """Session advisory lock: a concurrent apply waits here, then finds nothing to do."""
    deadline = time.monotonic() + deadline_s
    announced = False
    with conn.cursor() as cur:
        while True:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
            if cur.fetchone()[0]:
                return
            if not announced:
                progress("another apply is running on this database; waiting for it to finish")
                announced = True
            if time.monotonic() > deadline:
                raise DeployError(
                    f"Another apply held the deploy lock for over {deadline_s:.0f}s. Check "
                    "`invoke status` and pg_stat_activity for a stuck apply, then run again."
                )
            time.sleep(0.5)


_HISTORY_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.history (
    id bigserial PRIMARY KEY,
    plan text NOT NULL,
    status text NOT NULL,
    from_fingerprint text NOT NULL,
    to_fingerprint text NOT NULL,
    sql_sha256 text,
    steps_done integer NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    duration_ms integer,
    db_user text NOT NULL DEFAULT current_user,
    client_host text,
    deployment text,
    git_sha text,
    error text
);
COMMENT ON TABLE {schema}.history IS 'Plans applied by invoke apply (schema-deploy); do not edit.';
"""


def _ensure_history(conn: psycopg2.extensions.connection, schema: str) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"{pgsql_ident(schema)}.history",)
        )
        if cur.fetchone()[0]:
            return
        try:
            cur.execute(
                pgsql.SQL(_HISTORY_DDL).format(schema=pgsql.Identifier(schema))  # type: ignore[arg-type]
            )
        except psycopg2.errors.UniqueViolation:
            pass  # created concurrently by another apply: fine


def pgsql_ident(name: str) -> str:
    """Quote an identifier the way PostgreSQL does (for to_regclass strings)."""
    return '"' + name.replace('"', '""') + '"'


def _who() -> dict[str, str | None]:
    return {
        "client_host": f"{getpass.getuser()}@{socket.gethostname()}",
        "deployment": os.environ.get("RAILWAY_DEPLOYMENT_ID"),
        "git_sha": os.environ.get("RAILWAY_GIT_COMMIT_SHA") or os.environ.get("GIT_COMMIT")
        or os.environ.get("GITHUB_SHA"),
    }


def _insert_history(
    cur: object, schema: str, plan_name: str, status: str, from_fp: str, to_fp: str,
    sql_sha256: str | None, steps_done: int, started: float, error: str | None = None,
) -> int:
    who = _who()
    cur.execute(  # type: ignore[attr-defined]
        pgsql.SQL(
            "INSERT INTO {}.history (plan, status, from_fingerprint, to_fingerprint, sql_sha256, "
            "steps_done, started_at, duration_ms, client_host, deployment, git_sha, error) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
        ).format(pgsql.Identifier(schema)),
        (
            plan_name, status, from_fp, to_fp, sql_sha256, steps_done,
            datetime.fromtimestamp(started, UTC), int((time.time() - started) * 1000),
            who["client_host"], who["deployment"], who["git_sha"], error,
        ),
    )
    return int(cur.fetchone()[0])  # type: ignore[attr-defined]


def _record_adoption_if_new(
    conn: psycopg2.extensions.connection, config: Config, graph: PlanGraph, live_fp: str,
    progress: Progress,
) -> bool:
    """First apply on a database that is already at a known state (e.g. built by Alembic)."""
    if live_fp == graph.start:
        return False
    with conn.cursor() as cur:
        cur.execute(pgsql.SQL("SELECT count(*) FROM {}.history").format(
            pgsql.Identifier(config.history_schema)))
        if cur.fetchone()[0]:
            return False
        state = next(
            (p.filename for p in graph.chain if p.to_fingerprint == live_fp), "(start)"
        )
        _insert_history(cur, config.history_schema, state, "adopted", live_fp, live_fp, None, 0,
                        time.time())
    progress(f"adopted the existing schema as the state after {state}; no DDL re-run")
    return True


def _resumable(
    conn: psycopg2.extensions.connection, config: Config, graph: PlanGraph
) -> tuple[Plan, int] | None:
    """A plan with non-transactional steps that an earlier run left part-way."""
    with conn.cursor() as cur:
        cur.execute(pgsql.SQL(
            "SELECT plan, steps_done, status FROM {}.history ORDER BY id DESC LIMIT 1"
        ).format(pgsql.Identifier(config.history_schema)))
        row = cur.fetchone()
    if not row or row[2] != "running" or row[1] <= 0:
        return None
    plan = next((p for p in graph.chain if p.filename == row[0]), None)
    return (plan, int(row[1])) if plan is not None else None


def _apply_one(
    conn: psycopg2.extensions.connection, config: Config, plan: Plan, exclusions: Exclusions,
    graph: PlanGraph, retries: int, start_step: int, progress: Progress,
) -> float:
    steps = plan_steps(plan.body, plan.filename)
    started = time.time()
    single = len(steps) == 1 and steps[0].transactional
    history_id: int | None = None
    if not single and start_step == 0:
        conn.autocommit = True
        with conn.cursor() as cur:
            history_id = _insert_history(
                cur, config.history_schema, plan.filename, "running", plan.from_fingerprint,
                plan.to_fingerprint, plan.sha256, 0, started,
            )

    def before_commit(cur: object, steps_done: int) -> None:
        if steps_done < len(steps):
            _update_steps(cur, config.history_schema, plan.filename, steps_done)
            return
        _verify_inside(cur, plan, exclusions, config, graph)
        if single:
            _insert_history(cur, config.history_schema, plan.filename, "applied",
                            plan.from_fingerprint, plan.to_fingerprint, plan.sha256, steps_done,
                            started)
        else:
            _finish_running(cur, config.history_schema, plan.filename, steps_done, started)

    attempt = 0
    delay = 0.5
    while True:
        attempt += 1
        try:
            run_steps(conn, steps, filename=plan.filename, start=start_step,
                      before_commit=before_commit)
            break
        except psycopg2.errors.LockNotAvailable:
            blockers = _blockers(conn, plan)
            if attempt >= retries:
                raise DeployError(
                    f"{plan.filename} could not get its locks after {attempt} attempts "
                    "(lock_timeout each time); nothing of it was kept. Blocked by: "
                    f"{blockers or 'a session that has finished since'}. Let that session "
                    "finish (or end it), then run apply again.",
                    exit_code=ERROR,
                ) from None
            progress(f"lock wait timed out (attempt {attempt}/{retries}); blocked by {blockers}; "
                     f"retrying in {delay:.1f}s")
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        except psycopg2.errors.QueryCanceled:
            raise DeployError(
                f"{plan.filename} exceeded statement_timeout and was rolled back; nothing of it "
                "was kept. Raise --statement-timeout (or [tool.deploy] statement_timeout) if the "
                "statement is expected to be slow, or rewrite it to run in smaller steps.",
            ) from None
        except StatementFailed as exc:
            if history_id is not None:
                _mark_failed(conn, config.history_schema, plan.filename, exc.message)
            raise
    _ = history_id
    return time.time() - started


def _verify_inside(
    cur: object, plan: Plan, exclusions: Exclusions, config: Config, graph: PlanGraph
) -> None:
    """Inside the plan's transaction: the schema must now be exactly the plan's `to`."""
    after = describe(cur.connection, exclusions)  # type: ignore[attr-defined]
    after_fp = fingerprint(after)
    if after_fp == plan.to_fingerprint:
        return
    details = ""
    head = snapshot.load_state(config)
    if head is not None and plan.to_fingerprint == graph.head and fingerprint(head) == graph.head:
        differences = compare(head, after)
        details = "Differences from the plan's 'to' (- expected, + got):\n" + "\n".join(
            str(d) for d in differences[:40]
        )
    raise DeployError(
        f"{plan.filename} ran, but the schema it produced ({short(after_fp)}) is not the plan's "
        f"'to' ({short(plan.to_fingerprint)}), so it was rolled back. The file was probably "
        "edited after it was generated: run `invoke check` locally to see, and regenerate it.",
        exit_code=ERROR,
        details=details,
    )


def _update_steps(cur: object, schema: str, plan_name: str, steps_done: int) -> None:
    cur.execute(  # type: ignore[attr-defined]
        pgsql.SQL(
            "UPDATE {}.history SET steps_done = %s WHERE id = (SELECT max(id) FROM {}.history "
            "WHERE plan = %s AND status = 'running')"
        ).format(pgsql.Identifier(schema), pgsql.Identifier(schema)),
        (steps_done, plan_name),
    )


def _finish_running(cur: object, schema: str, plan_name: str, steps_done: int, started: float) -> None:
    cur.execute(  # type: ignore[attr-defined]
        pgsql.SQL(
            "UPDATE {}.history SET status = 'applied', steps_done = %s, duration_ms = %s "
            "WHERE id = (SELECT max(id) FROM {}.history WHERE plan = %s AND status = 'running')"
        ).format(pgsql.Identifier(schema), pgsql.Identifier(schema)),
        (steps_done, int((time.time() - started) * 1000), plan_name),
    )


def _mark_failed(conn: psycopg2.extensions.connection, schema: str, plan_name: str,
                 error: str) -> None:
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                pgsql.SQL(
                    "UPDATE {}.history SET error = %s WHERE id = (SELECT max(id) FROM {}.history "
                    "WHERE plan = %s AND status = 'running')"
                ).format(pgsql.Identifier(schema), pgsql.Identifier(schema)),
                (error, plan_name),
            )
    except psycopg2.Error:
        pass


def _blockers(conn: psycopg2.extensions.connection, plan: Plan) -> str:
    """Sessions holding locks on the relations the plan touches, as one readable line."""
    names = sorted({name for st in plan_steps(plan.body, plan.filename) for s in st.statements
                    for name in referenced_relations(s)})
    if not names:
        return ""
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                """
                SELECT DISTINCT a.pid, a.usename, a.application_name, a.state,
                       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120),
                       round(extract(epoch FROM clock_timestamp() - a.xact_start))
                FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.granted AND l.pid <> pg_backend_pid()
                  AND l.relation = ANY (SELECT to_regclass(n)::oid FROM unnest(%s::text[]) n
                                        WHERE to_regclass(n) IS NOT NULL)
                ORDER BY a.pid
                """,
                (names,),
            )
            rows = cur.fetchall()
    except psycopg2.Error:
        return ""
    return "; ".join(
        f"pid {pid} (user {user}, app {app or '-'}, {state}, transaction open {age}s): {query}"
        for pid, user, app, state, query, age in rows
    )


@dataclass
class StatusResult:
    """Where the live database stands relative to the plans."""

    state: str  # "head" | "pending" | "drift" | "no-plans"
    target: str
    live_fingerprint: str
    head: str | None
    matches: str | None  # plan file whose `to` the live schema equals, or "(start)"
    pending: list[str] = field(default_factory=list)
    history: list[dict[str, object]] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)


def read_status(config: Config, *, target: str | None = None, wait: float = 10.0) -> StatusResult:
    """Fingerprint the live database (read-only) and place it on the plan graph."""
    graph = load_chain(config)
    url = target_db.resolve_target(target)
    conn = target_db.connect(url, wait=wait, read_only=True)
    try:
        live = describe(conn, exclusions_for(config))
        history = _history_rows(conn, config.history_schema)
    finally:
        conn.close()
    live_fp = fingerprint(live)
    result = StatusResult("no-plans", urls.describe(url), live_fp, graph.head, None,
                          history=history)
    if graph.head is None:
        return result
    path = graph.path(live_fp)
    if live_fp == graph.start:
        result.matches = "(empty schema)"
    for plan in graph.chain:
        if plan.to_fingerprint == live_fp:
            result.matches = plan.filename
    if path is None:
        result.state = "drift"
        head = snapshot.load_state(config)
        if head is not None and fingerprint(head) == graph.head:
            result.differences = [str(d) for d in compare(head, live)]
    elif not path:
        result.state = "head"
    else:
        result.state = "pending"
        result.pending = [p.filename for p in path]
    return result


def _history_rows(conn: psycopg2.extensions.connection, schema: str, limit: int = 5) -> list[dict[str, object]]:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{pgsql_ident(schema)}.history",))
        if not cur.fetchone()[0]:
            conn.rollback()
            return []
        cur.execute(
            pgsql.SQL(
                "SELECT plan, status, to_fingerprint, started_at, duration_ms, db_user, "
                "client_host, deployment, git_sha FROM {}.history ORDER BY id DESC LIMIT %s"
            ).format(pgsql.Identifier(schema)),
            (limit,),
        )
        columns = [d[0] for d in cur.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    conn.rollback()
    return rows
