"""`apply`: run exactly the reviewed plans on a live database.

Needs only the target database and the plan files: no Docker, no scratch server, no
import of the models. Per run: connect (with backoff) → advisory lock → fingerprint →
path of plans to head → each plan in one transaction with lock/statement timeouts,
verified against its `to` before it commits, and recorded in the history table.

A two-part plan (expand / contract) runs its expand part in the deploy that meets it and its
contract part in a later one (a different deploy id, see `_contract_allowed`), each part
verified against its own fingerprint (`expanded`, then `to`) and recorded as its own row.

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

from deploy import alembic, hazards, history, keep, position, reverse, session, snapshot, urls
from deploy import target as target_db
from deploy.config import Config
from deploy.errors import ERROR, PENDING, UNAPPROVED_HAZARD, DeployError
from deploy.fingerprint import (
    Description,
    Exclusions,
    compare,
    describe,
    fingerprint,
    format_differences,
)
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
    part: str | None = None  # 'expand' | 'contract' for one part of a two-part plan


@dataclass
class ApplyResult:
    """What `apply` did."""

    status: str  # "up-to-date" | "applied" | "dry-run" | "contract-pending" | "ahead" | …
    target: str
    live_fingerprint: str
    head: str | None
    applied: list[AppliedPlan] = field(default_factory=list)
    adopted: bool = False  # in a dry run: would adopt
    adopted_state: str | None = None
    message: str | None = None  # e.g. why a database ahead of the plans was left in place
    contract_pending: str | None = None  # plan whose contract part waits for the next deploy


def check_approvals(plans: list[Plan]) -> None:
    """Refuse (exit 3) when a plan about to run has a hazard without an `-- approve:` line."""
    missing = []
    for plan in plans:
        try:
            verdict = hazards.review(plan.body, plan.approvals)  # the same decision `check` makes
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
    action: Callable[[_Run, Connection, bool], ApplyResult] | None = None,
    force_contract: bool = False,
) -> ApplyResult:
    """Bring the target to the head of the plans; exactly the reviewed SQL, nothing else.

    A contract part runs only in a later deploy than its expand part, or with
    `force_contract`. Raises DeployError (exit 1 error, 2 a plan waits behind a pending
    contract, 3 unapproved hazard, 4 drift); never leaves a plan half-applied except between
    the committed steps of a plan that cannot run in one transaction, which the next run
    resumes.
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
        force_contract=force_contract,
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
        # `action` (e.g. invoke rollback) runs under the same connection, lock and timeouts.
        result = (action or _Run.apply)(run, conn, dry_run)
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
    undoing: str | None = None  # running the reverse of this plan (invoke rollback)
    force_contract: bool = False  # `invoke apply --contract`: run contract parts now

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
        if where_now.state == position.AHEAD:  # an older deployment (Railway's rollback)
            from deploy.rollback import on_ahead
            return on_ahead(self, conn, where_now, result, dry_run)
        path, resume = where_now.path, where_now.resume
        if resume is not None:
            part = f" ({resume.part} part)" if resume.part else ""
            self.progress(
                f"{resume.plan.filename}{part} was stopped part-way by an earlier run; resuming "
                f"at step {resume.steps_done + 1}"
            )
        units = _units(where_now)
        check_approvals(path)
        for plan, part in units:  # a plan the runner refuses must stop the run before any runs
            position.part_steps(plan, part)
        self._warn_version(conn, path)
        adopt_state = None
        if (resume is None and where_now.contract is None and live_fp != graph.start
                and not history.has_rows(conn, self.schema)):
            adopt_state = _state_name(graph, live_fp)
        if dry_run:
            return self._dry_run(conn, where_now, units, result, adopt_state)
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
        expanded_now: set[str] = set()  # plans whose expand part this run applied
        for index, (plan, part) in enumerate(units):
            resumed = resume if index == 0 else None
            if part == "contract" and resumed is None and not self._contract_allowed(
                    conn, plan, plan.filename in expanded_now):
                return self._defer(conn, plan, units[index + 1:], result)
            label = f"{plan.filename} ({part} part)" if part else plan.filename
            self.progress(f"applying {label} ({index + 1}/{len(units)})")
            started = time.monotonic()
            current = self._apply_one(conn, plan, current, resumed, part)
            if part == "expand":
                expanded_now.add(plan.filename)
            result.applied.append(AppliedPlan(
                plan.filename, plan.expanded_fingerprint if part == "contract"
                else plan.from_fingerprint, position.target_of(plan, part),
                time.monotonic() - started, (), resumed.steps_done if resumed else None, part,
            ))
        result.status = "applied"
        return result

    # --- expand / contract ---------------------------------------------------------------

    def _contract_allowed(self, conn: Connection, plan: Plan, expanded_now: bool) -> bool:
        """Whether this run may run `plan`'s contract part: with --contract; never in the run
        that ran its expand part; else when a deploy other than this one went live on the
        expanded schema (so no code older than the plan is serving any more). Without a
        deploy id (no RAILWAY_DEPLOYMENT_ID, no git commit) every run counts as a new deploy.
        """
        if self.force_contract:
            return True
        if expanded_now:
            return False
        _autocommit(conn)
        current = history.deploy_id(self.who)
        if current is None:
            return True
        return any(other != current
                   for other in history.deferred_deploys(conn, self.schema, plan))

    def _defer(self, conn: Connection, plan: Plan, waiting: list[tuple[Plan, str | None]],
               result: ApplyResult) -> ApplyResult:
        """Stop before `plan`'s contract part: exit 0 when nothing waits behind it (the code
        of this deploy goes live on the expanded schema, recorded so that the next deploy runs
        the contract), else exit 2, since this code needs the plans that wait."""
        later = [p.filename for p, _ in waiting]
        ran = ", ".join(f"{a.filename}" + (f" ({a.part} part)" if a.part else "")
                        for a in result.applied)
        if later:
            raise DeployError(
                f"{', '.join(later)} wait(s) behind the contract part of {plan.filename}, which "
                "this deploy does not run: the code that was serving when it started may still "
                "use what that part drops (Railway runs pre-deploy while the old version "
                f"serves). {f'Applied now: {ran}. ' if ran else ''}Nothing failed and nothing "
                "drifted, but this code expects the plans that wait, so apply exits 2 (changes "
                "pending) and the deploy must not go live. What to do: deploy a commit whose "
                f"plans end at {plan.filename} first (its apply leaves the contract pending and "
                "its code goes live; the deploy after it runs the contract and the rest), or "
                "run `invoke apply --contract` once no running code uses what the contract part "
                "drops.",
                exit_code=PENDING,
            )
        note = (f"contract part of {plan.filename} pending: this deploy's code goes live on the "
                "expanded schema; the next deploy runs it")
        _autocommit(conn)
        history.record_deferred(conn, self.schema, plan, self.who, note)
        result.status = "contract-pending"
        result.contract_pending = plan.filename
        result.live_fingerprint = plan.expanded_fingerprint or result.live_fingerprint
        result.message = (
            f"Contract pending: {plan.filename}, runs at the next deploy (a different "
            "RAILWAY_DEPLOYMENT_ID or git commit), once no code older than this plan serves; "
            "`invoke apply --contract` runs it now.")
        self.progress(result.message)
        return result

    def _dry_run(self, conn: Connection, where_now: position.Position,
                 units: list[tuple[Plan, str | None]], result: ApplyResult,
                 adopt_state: str | None) -> ApplyResult:
        """What apply would run, up to the first contract part it would leave pending."""
        resume = where_now.resume
        result.status = "dry-run"
        result.adopted = adopt_state is not None
        result.adopted_state = adopt_state
        expanded_now: set[str] = set()
        for index, (plan, part) in enumerate(units):
            resumed_at = resume.steps_done if resume is not None and index == 0 else None
            if part == "contract" and resumed_at is None and not self._contract_allowed(
                    conn, plan, plan.filename in expanded_now):
                result.contract_pending = plan.filename
                waiting = ", ".join(p.filename for p, _ in units[index + 1:])
                result.message = (
                    f"would stop before the contract part of {plan.filename} (it runs at the "
                    "next deploy)" + (f"; waiting behind it: {waiting}" if waiting else ""))
                break
            if part == "expand":
                expanded_now.add(plan.filename)
            statements = tuple(s.sql for st in position.part_steps(plan, part)[resumed_at or 0:]
                               for s in st.statements)
            result.applied.append(AppliedPlan(
                plan.filename, plan.expanded_fingerprint if part == "contract"
                else plan.from_fingerprint, position.target_of(plan, part), 0.0, statements,
                resumed_at, part,
            ))
        return result

    # --- one plan -----------------------------------------------------------------------

    def _apply_one(
        self, conn: Connection, plan: Plan, before: Description, resume: position.Resume | None,
        part: str | None = None,
    ) -> Description:
        """Run one plan, or one `part` of a two-part plan (from its first step, or from where
        `resume` says); return the schema it lands on (`to`, or `expanded` for the expand part).
        """
        steps = position.part_steps(plan, part)
        started = time.time()
        conn.autocommit = True  # history bookkeeping between steps commits on its own
        # Nothing lost (deploy/keep.py): dropped data is kept first, a reverse restores it.
        if self.undoing is None and resume is None:
            steps = keep.add_keeps(conn, self.config, plan, steps, self.progress)
        elif self.undoing is not None:
            steps = keep.add_restores(conn, self.config, self.undoing, steps, self.progress)
        recorded = _recorded(plan, part) if self.undoing is None else (None, None)
        rows = {"from_fp": plan.expanded_fingerprint if part == "contract" else None,
                "to_fp": position.target_of(plan, part), "part": part,
                "reverse_sql": recorded[0], "expand_only": recorded[1]}
        if not steps:  # an empty expand part: nothing to run, `expanded` is `from`
            history.insert_row(conn, self.schema, plan, "applied", started, self.who, **rows,
                               note="the expand part is empty: nothing ran before the contract")
            return before
        single = len(steps) == 1 and steps[0].transactional
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
                                            self.who, **rows)
        else:
            invalid = position.invalid_indexes(conn)
            history_id = history.insert_row(
                conn, self.schema, plan, "running", started, self.who,
                resume_fp=position.resume_fingerprint(before, invalid, steps[0]), **rows,
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
            after["to"] = self._verify(view, plan, steps, single, before, part)
            history.update_row(cur, self.schema, history_id,
                               status="rolled-back" if self.undoing else "applied",
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
                before: Description, part: str | None = None) -> Description:
        """Inside the last step's transaction: the schema must now be exactly the plan's `to`
        (its `expanded` after the expand part)."""
        after = describe(view, self.exclusions)
        after_fp = fingerprint(after)
        expected = position.target_of(plan, part)
        if after_fp == expected:
            return after
        from_head = snapshot.head_differences(self.config, expected, after)
        if from_head is not None and expected == self.graph.head:
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
        which = ("its expand part ran, but the schema it produced" if part == "expand" else
                 f"{'its contract part' if part else 'it'} ran, but the schema it produced")
        label = "'expanded'" if part == "expand" else "'to'"
        raise DeployError(
            f"{plan.filename}: {which} ({short(after_fp)}) is not the plan's {label} "
            f"({short(expected)}), {undone}. {cause}",
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


def _autocommit(conn: Connection) -> None:
    """Back to autocommit for bookkeeping after a part ran (its steps have all committed)."""
    if not conn.autocommit:
        conn.commit()  # ends the read-only transaction the runner's last check may have opened
        conn.autocommit = True


def _units(where_now: position.Position) -> list[tuple[Plan, str | None]]:
    """What apply would run from `where_now`, in order: (plan, part), part None for a
    one-part plan; a two-part plan gives its expand then its contract part."""
    units: list[tuple[Plan, str | None]] = []
    for index, plan in enumerate(where_now.path):
        resumed = where_now.resume.part if where_now.resume is not None else None
        if index == 0 and (where_now.contract is not None or resumed == "contract"):
            units.append((plan, "contract"))
        elif plan.two_part:
            units += [(plan, "expand"), (plan, "contract")]
        else:
            units.append((plan, None))
    return units


def _recorded(plan: Plan, part: str | None) -> tuple[str | None, bool | None]:
    """Reverse SQL and expand-only flag for a history row (deploy/reverse.py `recorded`).

    The reverse goes from `to`: only the row that completes a plan carries it. The expand
    row's flag says whether older code still works on `expanded` (the expand part has no
    hazard), which is what an older deployment meeting this state decides by.
    """
    if part != "expand":
        return reverse.recorded(plan)
    try:
        return None, not hazards.classify(plan.expand_body)
    except Exception:  # noqa: BLE001 - unparseable plans are refused before this matters
        return None, False


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
