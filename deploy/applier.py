"""`apply`: run exactly the reviewed plans on a live database.

Needs only the target database and the plan files: no Docker, no scratch server, no
import of the models. Per run: connect (with backoff) → advisory lock → fingerprint →
path of plans to head → each plan in one transaction with lock/statement timeouts,
verified against its `to` before it commits, and recorded in the history table.

A plan with statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY, …) is
run step by step; the history row remembers how many steps committed and the schema's
fingerprint at that point, so a re-run after a crash resumes exactly there, and only when
the database is still in that recorded state.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg2

from deploy import alembic, history, position, session, snapshot, urls
from deploy import target as target_db
from deploy.config import Config
from deploy.errors import ERROR, UNAPPROVED_HAZARD, DeployError
from deploy.fingerprint import (
    Description,
    Exclusions,
    compare,
    describe,
    fingerprint,
    format_differences,
)
from deploy.hazards import review
from deploy.plans import Plan, PlanGraph, load_chain, short
from deploy.runner import READ_ONLY, Step, plan_steps, run_steps
from deploy.statements import (
    StatementError,
    referenced_relations,
)

Progress = Callable[[str], None]
Connection = psycopg2.extensions.connection

LOCK_KEY = history.LOCK_KEY  # the deploy lock


@dataclass(frozen=True)
class AppliedPlan:
    """A plan this run applied (or would apply, in a dry run)."""

    filename: str
    from_fingerprint: str
    to_fingerprint: str
    seconds: float
    statements: tuple[str, ...] = ()
    resumed_at_step: int | None = None  # set when an interrupted plan was resumed


@dataclass
class ApplyResult:
    """What `apply` did."""

    status: str  # "up-to-date" | "applied" | "dry-run"
    target: str
    live_fingerprint: str
    head: str | None
    applied: list[AppliedPlan] = field(default_factory=list)
    adopted: bool = False  # in a dry run: would adopt
    adopted_state: str | None = None


def check_approvals(plans: list[Plan]) -> None:
    """Refuse (exit 3) when a plan about to run has a hazard without an `-- approve:` line."""
    missing = []
    for plan in plans:
        try:
            verdict = review(plan.body, plan.approvals)  # the same decision `check` makes
        except StatementError as exc:
            raise DeployError(
                f"{plan.filename}: {exc}. Fix the SQL (PostgreSQL could not parse it) and run "
                "again."
            ) from None
        for hazard in verdict.missing:
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
    """Bring the target to the head of the plans; exactly the reviewed SQL, nothing else.

    Raises DeployError (exit 1 error, 3 unapproved hazard, 4 drift); never leaves a plan
    half-applied except between the committed steps of a plan that cannot run in one
    transaction, which the next run resumes.
    """
    # Plans first: a damaged file must fail before anything touches the database.
    graph = load_chain(config.plans_dir, required=True)
    url = target_db.resolve_apply_target(target, progress)
    where = urls.describe(url)
    run = _Run(
        config=config,
        graph=graph,
        exclusions=config.exclusions,
        url=url,
        where=where,
        retries=max(1, int(retries)),
        progress=progress,
    )
    conn = target_db.connect(url, wait=wait, read_only=dry_run, progress=progress)
    try:
        conn.autocommit = True
        _set(conn, "lock_timeout", lock_timeout or config.lock_timeout)
        _set(conn, "statement_timeout", statement_timeout or config.statement_timeout)
        # A client killed mid-statement must not keep its locks for the rest of that statement.
        _set(conn, "client_connection_check_interval", "1s", optional=True)
        if target_db.transaction_pooled(conn, url):
            if not dry_run:
                raise target_db.pooled_error(url)
            progress(f"warning: {target_db.pooled_error(url).message}")
        # What every step of every plan starts from, whatever an earlier plan did.
        run.pinned = session.capture(conn)
        if not dry_run:
            _refuse_read_only(conn, where)
            _take_lock(conn, lock_wait, progress)
        result = run.apply(conn, dry_run)
        if config.alembic_stamp and not dry_run:
            alembic.stamp(conn, config.alembic_stamp, progress)
        return result
    except psycopg2.Error as exc:
        message = urls.mask(str(exc).strip()) or type(exc).__name__
        if run.current_row is not None:
            _record_lost(url, config.history_schema, run.current_row,
                         f"apply stopped by a database error: {message}")
        if exc.pgcode == READ_ONLY:  # e.g. a failover turned the server into a standby mid-run
            raise DeployError(
                f"{where} refused a write because it is read-only "
                f"({urls.mask((exc.pgerror or str(exc)).strip().splitlines()[0])}); nothing more "
                "was applied. Point --target (or DATABASE_URL) at the primary server, or lift "
                "default_transaction_read_only, and run apply again."
            ) from None
        hint = target_db.privilege_hint(exc, url, config.history_schema)
        if hint:
            raise DeployError(
                f"{where} refused the apply: {message}.{hint} Then run "
                "apply again (a plan that was running was rolled back)."
            ) from None
        raise DeployError(
            f"The database connection to {where} failed during apply: {message}. A plan that "
            "was running was rolled back (or, for a plan with non-transactional steps, is "
            "resumed by the next run); run apply again.",
        ) from None
    finally:
        conn.close()


def _record_lost(url: str, schema: str, history_id: int, message: str) -> None:
    """Best effort, on a new connection: mark the plan's row failed when its own connection
    can no longer write it (killed backend, server restart)."""
    try:
        conn = target_db.connect(url, wait=2)
    except DeployError:
        return  # the server is gone: the next run reconciles the row instead
    try:
        history.mark_lost(conn, schema, history_id, message[:2000])
    except psycopg2.Error:
        pass
    finally:
        conn.close()


@dataclass
class _Run:
    """One apply: the graph, settings and progress sink shared by its steps."""

    config: Config
    graph: PlanGraph
    exclusions: Exclusions
    url: str
    where: str
    retries: int
    progress: Progress
    current_row: int | None = None  # history row of the plan being applied
    pinned: dict[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> str:
        return self.config.history_schema

    @functools.cached_property
    def who(self) -> history.Who:
        return history.who(self.config)

    def apply(self, conn: Connection, dry_run: bool) -> ApplyResult:
        graph = self.graph
        with position.reading(conn, self.where):
            where_now = position.locate(conn, self.config, graph)
        live, live_fp = where_now.live, where_now.live_fingerprint
        result = ApplyResult("up-to-date", self.where, live_fp, graph.head)
        if graph.head is None:
            self.progress("no plans yet: nothing to apply")
            return result
        if where_now.state == position.DRIFTED:
            raise position.drift_error(self.config, graph, where_now, self.where,
                                      target_db.server_major(conn))
        path, resume = where_now.path, where_now.resume
        if resume is not None:
            self.progress(
                f"{resume.plan.filename} was stopped part-way by an earlier run; resuming at "
                f"step {resume.steps_done + 1}"
            )
        check_approvals(path)
        for plan in path:  # a plan the runner refuses must stop the run before any plan runs
            plan_steps(plan.body, plan.filename)
        self._warn_version(conn, path)
        adopt_state = None
        if resume is None and live_fp != graph.start and not history.has_rows(conn, self.schema):
            adopt_state = _state_name(graph, live_fp)
        if dry_run:
            result.status = "dry-run"
            result.adopted = adopt_state is not None
            result.adopted_state = adopt_state
            for index, plan in enumerate(path):
                resumed_at = resume.steps_done if resume is not None and index == 0 else None
                statements = tuple(
                    s.sql for st in plan_steps(plan.body, plan.filename)[resumed_at or 0:]
                    for s in st.statements
                )
                result.applied.append(AppliedPlan(
                    plan.filename, plan.from_fingerprint, plan.to_fingerprint, 0.0, statements,
                    resumed_at,
                ))
            return result
        if adopt_state is not None or path:
            history.ensure(conn, self.schema)
        if adopt_state is not None:
            note = history.record_adoption(conn, self.schema, adopt_state, live_fp, self.who)
            self.progress(
                f"adopted the existing schema as the state after {adopt_state} (no DDL re-run)"
                + (f"; {note}" if note else "")
            )
            result.adopted, result.adopted_state = True, adopt_state
        # We hold the deploy lock, so rows still 'running' belong to dead runs: say what
        # became of them (finished before their bookkeeping, or interrupted).
        for note in history.reconcile(conn, self.schema, live_fp,
                                      resume.history_id if resume else None):
            self.progress(note)
        if not path:
            self.progress(f"{self.where} is up to date ({short(live_fp)})")
            return result
        current = live
        for index, plan in enumerate(path):
            resumed = resume if index == 0 else None
            self.progress(f"applying {plan.filename} ({index + 1}/{len(path)})")
            started = time.monotonic()
            current = self._apply_one(conn, plan, current, resumed)
            result.applied.append(AppliedPlan(
                plan.filename, plan.from_fingerprint, plan.to_fingerprint,
                time.monotonic() - started, (), resumed.steps_done if resumed else None,
            ))
        result.status = "applied"
        return result

    # --- one plan -----------------------------------------------------------------------

    def _apply_one(
        self, conn: Connection, plan: Plan, before: Description, resume: position.Resume | None
    ) -> Description:
        """Run one plan (from its first step, or from where `resume` says); return its `to`."""
        steps = plan_steps(plan.body, plan.filename)
        single = len(steps) == 1 and steps[0].transactional
        started = time.time()
        conn.autocommit = True  # history bookkeeping between steps commits on its own
        history_id: int | None = None
        start_step = 0
        if resume is not None:
            history_id, start_step = resume.history_id, resume.steps_done
            history.update_row(
                conn, self.schema, history_id, status="running", error=None,
                note=f"resumed at step {start_step + 1} after an interrupted run",
            )
        elif single:
            # Committed before the plan's transaction opens: if the process or its connection
            # dies, this row still says the plan was tried (a later run reconciles it).
            history_id = history.insert_row(conn, self.schema, plan, "running", started,
                                            self.who)
        else:
            invalid = position.invalid_indexes(conn)
            history_id = history.insert_row(
                conn, self.schema, plan, "running", started, self.who,
                resume_fp=position.resume_fingerprint(before, invalid, steps[0]),
            )
        self.current_row = history_id
        after: dict[str, Description] = {}

        def before_commit(cur: object, steps_done: int) -> None:
            # Runs inside the step's transaction: what it records commits with the step.
            view = cur.connection  # type: ignore[attr-defined]
            if steps_done < len(steps):
                desc = describe(view, self.exclusions)
                resume_fp = position.resume_fingerprint(desc, position.invalid_indexes(view),
                                                        steps[steps_done])
                history.update_row(cur, self.schema, history_id, steps_done=steps_done,
                                   resume_fp=resume_fp)
                return
            after["to"] = self._verify(view, plan, steps, single, before)
            history.update_row(cur, self.schema, history_id, status="applied",
                               steps_done=steps_done, finished=True)

        for index in range(start_step, len(steps)):
            if not single:
                kind = "transaction" if steps[index].transactional else "outside a transaction"
                self.progress(f"  step {index + 1}/{len(steps)} ({kind})")
            try:
                self._run_step(conn, plan, steps, index, before_commit)
            except DeployError as exc:
                if not history.record_failure(conn, self.schema, plan, history_id, started,
                                              exc.message, self.who) and history_id is not None:
                    _record_lost(self.url, self.schema, history_id,
                                 f"connection lost: {exc.message}")
                raise
        return after["to"]

    def _run_step(
        self, conn: Connection, plan: Plan, steps: list[Step], index: int,
        before_commit: Callable[[object, int], None],
    ) -> None:
        """Run steps[index], retrying with backoff when a lock wait times out."""
        delay = 0.5
        for attempt in range(1, self.retries + 1):
            try:
                # steps[: index + 1] with start=index runs exactly this step.
                run_steps(conn, steps[: index + 1], filename=plan.filename, start=index,
                          before_commit=before_commit, pinned=self.pinned or None)
                return
            except psycopg2.errors.LockNotAvailable:
                blockers = blocking_sessions(conn, plan)
                if attempt >= self.retries:
                    kept = (
                        "nothing of it was kept" if index == 0
                        else f"its first {index} step(s) stay committed and the next run resumes "
                        f"at step {index + 1}"
                    )
                    raise DeployError(
                        f"{plan.filename} could not get its locks after {attempt} attempt(s) "
                        f"(lock_timeout each time); {kept}. Blocked by: "
                        f"{blockers or 'a session that has finished since'}. Let that session "
                        "finish (or end it with pg_terminate_backend(<pid>)), then run apply "
                        "again.",
                    ) from None
                self.progress(
                    f"lock wait timed out (attempt {attempt}/{self.retries}); blocked by "
                    f"{blockers or 'an unknown session'}; retrying in {delay:.1f}s"
                )
                time.sleep(delay * random.uniform(0.8, 1.2))  # jitter: competing deploys desync
                delay = min(delay * 2, 10.0)
            except psycopg2.errors.QueryCanceled:
                raise DeployError(
                    f"{plan.filename} was cancelled (statement_timeout, or pg_cancel_backend) and "
                    "rolled back. Raise --statement-timeout (or [tool.deploy] statement_timeout) "
                    "if the statement is expected to be slow, or split it into smaller steps.",
                ) from None

    def _verify(self, view: Connection, plan: Plan, steps: list[Step], single: bool,
                before: Description) -> Description:
        """Inside the last step's transaction: the schema must now be exactly the plan's `to`."""
        after = describe(view, self.exclusions)
        after_fp = fingerprint(after)
        if after_fp == plan.to_fingerprint:
            return after
        from_head = snapshot.head_differences(self.config, plan.to_fingerprint, after)
        if from_head is not None and plan.to_fingerprint == self.graph.head:
            title, differences = "Differences from the plan's 'to' (- expected, + got):", from_head
        else:  # no description of `to` at hand: show what the plan did, for a reviewer to judge
            title, differences = "What the plan changed (- before, + after):", compare(
                before, after)
        if single:
            undone = "so it was rolled back: nothing of it was kept"
        elif steps[-1].transactional:
            undone = ("so its last step was rolled back; the steps before it stay committed "
                      "(see `invoke status`), and apply stops here")
        else:
            undone = ("and apply stops here: its steps ran outside a transaction and stay "
                      "(see `invoke status`)")
        major = target_db.server_major(view)
        if plan.postgres and plan.postgres != major:
            # Not a hand edit: the same SQL gave another result on another server version.
            cause = (
                f"The plan was verified on PostgreSQL {plan.postgres} and {self.where} runs "
                f"PostgreSQL {major}; the objects below came out differently on {major}. Run "
                f"`invoke check` with [tool.deploy] postgres = {major} to see it on a scratch "
                f"server of that version, and regenerate the plan there if {major} needs other "
                "SQL (or report the difference if it is only how the server prints the same "
                "object)."
            )
        else:
            cause = ("The file was probably edited after it was generated: run `invoke check` "
                     "to see, and restore or regenerate it.")
        raise DeployError(
            f"{plan.filename} ran, but the schema it produced ({short(after_fp)}) is not the "
            f"plan's 'to' ({short(plan.to_fingerprint)}), {undone}. {cause}",
            exit_code=ERROR,
            details=title + "\n" + format_differences(differences, 40),
        )

    def _warn_version(self, conn: Connection, path: list[Plan]) -> None:
        major = target_db.server_major(conn)
        versions = sorted({p.postgres for p in path if p.postgres != major})
        if versions:
            self.progress(
                f"note: {self.where} runs PostgreSQL {major}; plans were verified on "
                f"{', '.join(map(str, versions))}. A plan that lands elsewhere is rolled back."
            )


def _set(conn: Connection, name: str, value: str, optional: bool = False) -> None:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT set_config(%s, %s, false)", (name, value))
    except psycopg2.Error as exc:
        if not optional:
            message = (exc.pgerror or str(exc)).strip().splitlines()[0]
            raise DeployError(
                f"Invalid {name} {value!r}: {message}. Use a PostgreSQL duration such as 5s, "
                "500ms or 15min."
            ) from None


def _refuse_read_only(conn: Connection, where: str) -> None:
    """A clear refusal, before anything is written, when the target cannot take writes."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
        standby, read_only = cur.fetchone()
    if standby:
        raise DeployError(
            f"{where} is a read-only standby (a replica in recovery), so nothing was applied. "
            "Point --target (or DATABASE_URL) at the primary server and run apply again."
        )
    if read_only == "on":
        raise DeployError(
            f"{where} is read-only for this session (default_transaction_read_only is on for "
            "the database or the role), so nothing was applied. If that is a deliberate freeze, "
            "run apply once it is lifted; otherwise reset it (ALTER DATABASE <name> RESET "
            "default_transaction_read_only, or the same for the role) or use another role."
        )


def _state_name(graph: PlanGraph, fp: str) -> str:
    """The plan file whose `to` is `fp`, or "(start)" for the empty schema."""
    for plan in graph.chain:
        if plan.to_fingerprint == fp:
            return plan.filename
    return "(start)"


def _take_lock(conn: Connection, deadline_s: float, progress: Progress) -> None:
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
                    "`invoke status` and pg_stat_activity (application_name 'schema-deploy') for "
                    "a stuck apply, then run again."
                )
            time.sleep(0.2)


# --- who blocks us ------------------------------------------------------------------------


def blocking_sessions(conn: Connection, plan: Plan) -> str:
    """Sessions holding locks on the relations the plan touches, as one readable line.

    Falls back to other sessions with an open transaction in this database when none of
    those relations is locked (the conflict was on another object, e.g. a type).
    """
    names = sorted({name for step in plan_steps(plan.body, plan.filename)
                    for statement in step.statements
                    for name in referenced_relations(statement)})
    query = """
        SELECT a.pid, a.usename, a.application_name, a.state,
               string_agg(DISTINCT l.mode || coalesce(' on ' || l.relation::regclass::text, ''),
                          ', '),
               left(regexp_replace(a.query, '\\s+', ' ', 'g'), 160),
               round(extract(epoch FROM clock_timestamp() - a.xact_start))
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.granted AND l.pid <> pg_backend_pid() AND {condition}
        GROUP BY a.pid, a.usename, a.application_name, a.state, a.query, a.xact_start
        ORDER BY a.pid
    """
    by_relation = """l.relation = ANY (SELECT to_regclass(n)::oid FROM unnest(%s::text[]) n
                                        WHERE to_regclass(n) IS NOT NULL)"""
    open_tx = "a.datname = current_database() AND a.xact_start IS NOT NULL"
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            rows = []
            if names:
                cur.execute(query.format(condition=by_relation), (names,))
                rows = cur.fetchall()
            if not rows:
                cur.execute(query.format(condition=open_tx))
                rows = cur.fetchall()
    except psycopg2.Error:
        return ""
    return "; ".join(
        f"pid {pid} (user {user}, application {app or '-'}, {state}, holding {locks}, "
        f"transaction open {age}s) running: {query_text}"
        for pid, user, app, state, locks, query_text, age in rows
    )
