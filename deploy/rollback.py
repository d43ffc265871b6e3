"""`rollback`, and what `apply` does when the database is ahead of its plan files.

`invoke rollback` undoes applied plans by running their reverses (deploy/reverse.py) with
everything apply guarantees: the deploy lock, lock/statement timeouts, one transaction per
plan, the schema verified against the reverse's `to` before it commits, and a history row
(status `rolled-back`). Data the forward plan dropped and kept is restored (deploy/keep.py).

Which reverse: the one in the plan files when it matches, else the one `apply` recorded in
the history table with the plan (an older deployment has no file for a newer plan).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from deploy import history, position
from deploy.applier import AppliedPlan, ApplyResult, check_approvals
from deploy.errors import DRIFT, DeployError
from deploy.fingerprint import describe
from deploy.plans import Plan, parse_plan_text, short
from deploy.reverse import load_reverse, mismatch
from deploy.runner import plan_steps

if TYPE_CHECKING:
    import psycopg2

    from deploy.applier import _Run

    Connection = psycopg2.extensions.connection


def _reverse_of(run: _Run, name: str, from_fp: str, to_fp: str,
                recorded_sql: str | None) -> Plan:
    """The reverse that takes a database at `to_fp` (after plan `name`) back to `from_fp`."""
    for plan in run.graph.chain:
        if plan.filename == name and plan.to_fingerprint == to_fp and (
                plan.from_fingerprint == from_fp):
            found = load_reverse(plan)
            if found is not None and mismatch(plan, found) is None:
                return found
    if recorded_sql:
        found = parse_plan_text(Path("history") / name, recorded_sql)
        if found.from_fingerprint == to_fp and found.to_fingerprint == from_fp:
            return found
    raise DeployError(
        f"{name} has no reverse (no file schema/plans/reverse/{name} matching it, and none "
        "recorded in the history table when it was applied), so it cannot be undone by the "
        "tool. Run `invoke plan --reverses` in the version of the code that has the plan, "
        "commit the reverse, and run rollback from there; or write the SQL by hand."
    )


def undo_route(run: _Run, conn: Connection, live_fp: str,
               to: str | None) -> list[tuple[str, Plan]]:
    """(forward plan name, its reverse) to run, in order, from `live_fp` back to `to`
    (a plan file name meaning the state after it, a fingerprint, or None: one plan back)."""
    recorded = history.recorded_applies(conn, run.config.history_schema)
    target = _target_fingerprint(run, to)
    route: list[tuple[str, Plan]] = []
    current = live_fp
    while current != target:
        row = next((r for r in recorded if r[2] == current), None)
        if row is not None:
            name, from_fp, _to, reverse_sql, _expand = row
        else:
            chain = [p for p in run.graph.chain if p.to_fingerprint == current]
            if not chain:
                raise DeployError(
                    f"No applied plan leads to the schema {short(current)}, so there is nothing "
                    "the tool knows how to undo from here" + (
                        f" on the way to {to}" if to else "") + ". `invoke status` shows where "
                    "the database stands.")
            name, from_fp, reverse_sql = chain[-1].filename, chain[-1].from_fingerprint, None
        route.append((name, _reverse_of(run, name, from_fp, current, reverse_sql)))
        current = from_fp
        if target is None:
            break
        if len(route) > 500:
            raise DeployError(f"{to} is not a state this database passed through.")
    return route


def _target_fingerprint(run: _Run, to: str | None) -> str | None:
    if not to:
        return None
    if to.startswith("sha256:"):
        return to
    name = Path(to).name
    for plan in run.graph.chain:
        if plan.filename == name:
            return plan.to_fingerprint
    raise DeployError(
        f"--to {to!r} is neither a plan file of the chain nor a fingerprint (sha256:…). "
        "Pass the plan file whose state to return to, e.g. --to schema/plans/<file>.sql.")


def rollback_action(run: _Run, conn: Connection, dry_run: bool, *,
                    to: str | None = None) -> ApplyResult:
    """Undo plans on `conn` (apply's connection, lock and timeouts are already in place)."""
    with position.reading(conn, run.where):
        where_now = position.locate(conn, run.config, run.graph)
    live_fp = where_now.live_fingerprint
    result = ApplyResult("up-to-date", run.where, live_fp, run.graph.head)
    if where_now.state == position.DRIFTED:
        raise position.drift_error(run.config, run.graph, where_now, run.where)
    if where_now.state == position.CONTRACT_PENDING and where_now.contract is not None:
        raise DeployError(contract_pending_refusal(where_now.contract.filename, run.where))
    if where_now.state == position.PART_WAY:
        raise DeployError(
            f"{where_now.resume.plan.filename if where_now.resume else 'a plan'} was stopped "
            "part-way; run `invoke apply` to finish it first, then roll back.")
    if run.graph.head is None:
        raise DeployError("There are no plans, so there is nothing to roll back.")
    route = undo_route(run, conn, live_fp, to)
    return run_reverses(run, conn, route, result, dry_run)


def contract_pending_refusal(name: str, where: str) -> str:
    """Why rollback does not undo an expand part alone, and what to do instead."""
    return (
        f"{where} is between the two parts of {name}: its expand part ran, its contract part is "
        "pending. Its reverse goes back from the plan's 'to', and there is no reviewed way back "
        "from the expanded state alone, so rollback refuses. Code older than the plan runs on "
        "this state as it is (the expand part keeps everything it uses; an older deployment's "
        "apply leaves it in place), so usually nothing needs undoing. To undo the plan "
        "completely: `invoke apply --contract` (kept data is saved), then `invoke rollback`, "
        "once no running code uses what the contract part drops.")


def run_reverses(run: _Run, conn: Connection, route: list[tuple[str, Plan]],
                 result: ApplyResult, dry_run: bool) -> ApplyResult:
    """Run the reverses of `route` in order, as apply runs plans; fills `result`."""
    reverses = [plan for _, plan in route]
    check_approvals(reverses)  # exit 3: a reverse's hazards need a reviewer too
    for plan in reverses:
        plan_steps(plan.body, plan.filename)
    if dry_run:
        result.status = "dry-run"
        for plan in reverses:
            statements = tuple(s.sql for st in plan_steps(plan.body, plan.filename)
                               for s in st.statements)
            result.applied.append(AppliedPlan(plan.filename, plan.from_fingerprint,
                                              plan.to_fingerprint, 0.0, statements))
        return result
    if not route:
        return result
    history.ensure(conn, run.schema)
    for note in history.reconcile(conn, run.schema, result.live_fingerprint, None):
        run.progress(note)
    current = describe(conn, run.exclusions)
    for index, (name, plan) in enumerate(route):
        run.progress(f"rolling back {name} ({index + 1}/{len(route)})")
        started = time.monotonic()
        run.undoing = name
        try:
            current = run._apply_one(conn, plan, current, None)  # noqa: SLF001
        finally:
            run.undoing = None
        result.applied.append(AppliedPlan(name, plan.from_fingerprint, plan.to_fingerprint,
                                          time.monotonic() - started))
    result.status = "rolled-back"
    result.live_fingerprint = route[-1][1].to_fingerprint
    return result


def on_ahead(run: _Run, conn: Connection, where_now: position.Position, result: ApplyResult,
             dry_run: bool) -> ApplyResult:
    """apply on a database ahead of its plan files (Railway's rollback deployed older code).

    `[tool.deploy] on_ahead`: `keep` leaves the newer state in place; `rollback` runs the
    recorded reverses back to this code's head; `auto` (default) keeps it when every plan
    ahead only expanded the schema (no hazard: older code still works), else rolls back.
    """
    names = ", ".join(a.plan for a in reversed(where_now.ahead))
    policy = run.config.on_ahead
    # Plans of this code that start where the recorded ones left the chain cannot run on
    # top of them: the way to this code's head goes back first.
    pending = run.graph.path(where_now.ahead_base or "") or []
    if policy == "auto":
        policy = "keep" if all(a.expand_only for a in where_now.ahead) and not pending else (
            "rollback")
    if policy == "keep" and pending:
        raise DeployError(
            f"{run.where} is ahead of these plan files by {names}, and this code has plans "
            f"({', '.join(p.filename for p in pending)}) that start before them, so they cannot "
            "run on top. on_ahead = keep forbids rolling back: set on_ahead = \"auto\" or "
            "\"rollback\", or run `invoke rollback` first.", exit_code=DRIFT)
    if policy == "keep":
        result.status = "ahead"
        result.message = (
            f"{run.where} is ahead of these plan files: a newer deployment applied {names} "
            "(reviewed plans recorded in the history table). Left in place, since those plans "
            "only add to the schema and this code works with it (on_ahead = "
            f"{run.config.on_ahead}). `invoke rollback` undoes them if needed.")
        run.progress(result.message)
        return result
    for ahead in where_now.ahead:
        if not ahead.reverse_sql:
            raise DeployError(
                f"{run.where} is ahead of these plan files ({names}) and on_ahead asks to roll "
                f"back, but {ahead.plan} was applied without a recorded reverse. Deploy the "
                "newer code again, or roll back from it with `invoke rollback`.",
                exit_code=DRIFT)
    route = [(a.plan, _reverse_of(run, a.plan, a.from_fingerprint, a.to_fingerprint,
                                  a.reverse_sql)) for a in where_now.ahead]
    check_approvals(pending)  # refuse before going back, not half-way to this code's head
    run.progress(f"{run.where} is ahead of these plan files by {names}: rolling back with the "
                 "reverses recorded when they were applied")
    done = run_reverses(run, conn, route, result, dry_run)
    if dry_run:
        return done
    conn.commit()  # end the bookkeeping transaction: locate reads in a session of its own
    conn.autocommit = True
    rest = run.apply(conn, dry_run)  # the state it lands on may still have plans pending
    rest.applied[:0] = done.applied
    rest.status = "rolled-back" if rest.status == "up-to-date" else rest.status
    rest.message = (f"Rolled back {names} with the reverses recorded when they were applied "
                    "(the database was ahead of these plan files, and they do not only add to "
                    f"the schema; on_ahead = {run.config.on_ahead}).")
    return rest


def forget_action(run: _Run, conn: Connection, dry_run: bool, *,
                  holder: dict[str, int]) -> ApplyResult:
    """Delete all kept data (`invoke rollback --forget`); the count goes into `holder`."""
    from deploy import keep

    result = ApplyResult("forgotten", run.where, "", run.graph.head)
    holder["rows"] = 0 if dry_run else keep.forget(conn, run.config.history_schema)
    return result
