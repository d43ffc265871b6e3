"""How each task's result is shown, and which exit code it maps to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deploy import errors
from deploy.applier import ApplyResult
from deploy.config import Config
from deploy.plans import short
from deploy.report import Output, append_step_summary, fenced
from deploy.status import StatusResult

if TYPE_CHECKING:  # the planner pulls in SQLAlchemy and migra: keep them off the apply path
    from deploy.planner import PlanResult


def _relative(config: Config, path: object) -> str:
    try:
        return str(path.relative_to(config.root))  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return str(path)


def show_plan(out: Output, config: Config, result: PlanResult) -> int:
    """Print a plan result; return the exit code (2 when changes are pending, else 0)."""
    code = errors.PENDING if result.status == "pending" else errors.OK
    hazards = [h.text for h in result.hazards]
    out.json(
        "plan",
        {
            "status": result.status,
            "exit_code": code,
            "from": result.from_fingerprint,
            "to": result.to_fingerprint,
            "plan_file": _relative(config, result.plan_path) if result.plan_path else None,
            "reverse_file": (_relative(config, result.reverse_path) if result.reverse_path
                             else None),
            "snapshot_written": result.snapshot_written,
            "target": result.target,
            "target_on_chain": result.target_on_chain,
            "hazards": hazards,
            # Two-part plans: the state between the parts, and the contract part's
            # BACKWARD_INCOMPATIBLE hazards that need no approval line.
            "expanded": result.expanded_fingerprint,
            "placed": [h.text for h in result.placed],
            "sql": result.sql,
            "notes": result.notes,
        },
    )
    for note in result.notes:
        out.text(out.colour("note: ", "yellow") + note)
    _plan_summary(config, result)
    where = f" for {result.target}" if result.target else ""
    if result.status == "up-to-date":
        out.text(
            out.colour(f"Nothing to do{where}: the schema already matches the models.", "green")
        )
        if result.snapshot_written:
            out.text(f"Updated {_relative(config, config.snapshot)}.")
        return code
    if result.target:
        on_chain = "is" if result.target_on_chain else "is NOT"
        out.text(
            f"{result.target} ({short(result.from_fingerprint)}) {on_chain} a state of the plan "
            "chain. SQL that takes it to the models:"
        )
    elif result.status == "pending":
        out.text("A new plan is needed. It would contain:")
    out.text("")
    out.text(result.sql.rstrip())
    out.text("")
    for text in hazards:
        out.text(out.colour("hazard: ", "red") + text)
    for hazard in result.placed:
        out.text(out.colour("in contract part, no approval needed: ", "yellow") + hazard.text)
    if result.plan_path:
        middle = (f" -> {short(result.expanded_fingerprint)} (expand) -> "
                  if result.expanded_fingerprint else " -> ")
        out.text(
            out.colour(f"Wrote {_relative(config, result.plan_path)}", "green")
            + f" ({short(result.from_fingerprint)}{middle}{short(result.to_fingerprint)})"
            + f" and {_relative(config, config.snapshot)}."
        )
        if hazards:
            out.text(
                "Review the hazards: approve each with an '-- approve: <same text> -- <reason>' "
                "line in the plan header, or `invoke check` and `invoke apply` will refuse it."
            )
        if result.reverse_path:
            out.text(f"Wrote its reverse {_relative(config, result.reverse_path)} (what `invoke "
                     "rollback` runs; its hazards are approved the same way before a rollback).")
    elif result.status == "pending" and not result.target:
        out.text("Run `invoke plan --name \"<what changed>\"` to write it.")
    return code




def _plan_summary(config: Config, result: PlanResult) -> None:
    """Markdown for $GITHUB_STEP_SUMMARY: the SQL in a collapsible block, hazards listed."""
    title = {"up-to-date": "nothing to do", "written": "plan written", "pending": "changes pending"}
    where = f" ({result.target})" if result.target else ""
    lines = [f"### invoke plan: {title.get(result.status, result.status)}{where}", ""]
    if result.plan_path:
        lines += [f"Wrote `{_relative(config, result.plan_path)}`.", ""]
    lines += [f"- hazard: `{h.text}`" for h in result.hazards]
    lines += [f"- in the contract part, no approval needed: `{h.text}`" for h in result.placed]
    if result.expanded_fingerprint:
        lines += ["", f"Two parts: expand to `{short(result.expanded_fingerprint)}` in this "
                  "deploy, contract in the next deploy, after the new code is live."]
    if result.sql:
        lines += ["", "<details><summary>SQL</summary>", "", fenced(result.sql, "sql"), "",
                  "</details>"]
    append_step_summary("\n".join(lines))


def show_apply(out: Output, result: ApplyResult) -> int:
    """Print an apply result (always exit 0: failures are raised as DeployError)."""
    out.json(
        "apply",
        {
            "status": result.status,
            "exit_code": errors.OK,
            "target": result.target,
            "live_fingerprint": result.live_fingerprint,
            "head": result.head,
            "adopted": result.adopted,
            "adopted_state": result.adopted_state,
            "message": result.message,
            "contract_pending": result.contract_pending,
            "plans": [
                {"file": p.filename, "from": p.from_fingerprint, "to": p.to_fingerprint,
                 "seconds": round(p.seconds, 3), "statements": list(p.statements),
                 "resumed_at_step": p.resumed_at_step, "part": p.part}
                for p in result.applied
            ],
        },
    )
    if result.adopted:
        verb = "Would adopt" if result.status == "dry-run" else "Adopted"
        out.text(f"{verb} {result.target}: its schema is the state after {result.adopted_state} "
                 "(recorded in the history; no DDL re-run).")
    if result.status == "up-to-date":
        out.text(out.colour(f"{result.target} is up to date", "green")
                 + f" ({short(result.live_fingerprint)}).")
    elif result.status == "ahead":
        out.text(out.colour(result.message or "", "yellow"))
    elif result.status == "rolled-back":  # an older deployment undid what it cannot run with
        out.text(out.colour(result.message or "", "yellow"))
        out.text(f"{result.target} is now at {short(result.live_fingerprint)}.")
    elif result.status == "dry-run":
        if not result.applied:
            out.text(f"Dry run: {result.target} is up to date; nothing would run.")
        for plan in result.applied:
            resumed = (f", resuming at step {plan.resumed_at_step + 1}"
                       if plan.resumed_at_step is not None else "")
            part = f" ({plan.part} part)" if plan.part else ""
            out.text(f"-- would apply {plan.filename}{part} "
                     f"({short(plan.from_fingerprint)} -> {short(plan.to_fingerprint)}{resumed})")
            for statement in plan.statements:
                out.text(statement.rstrip() + ";")
            out.text("")
        if result.message:
            out.text(f"-- {result.message}")
    else:
        for plan in result.applied:
            resumed = (f" (resumed at step {plan.resumed_at_step + 1})"
                       if plan.resumed_at_step is not None else "")
            part = f" ({plan.part} part)" if plan.part else ""
            out.text(f"applied {plan.filename}{part} in {plan.seconds:.2f}s{resumed}")
        if result.status == "contract-pending":
            out.text(out.colour(result.message or "", "yellow"))
            out.text(f"{result.target} is at {short(result.live_fingerprint)} (expanded; head "
                     f"{short(result.head)} after the contract part).")
        else:
            if result.message:
                out.text(result.message)
            out.text(out.colour(f"{result.target} is now at {short(result.head)}.", "green"))
    rows = "".join(f"| `{p.filename}`{f' ({p.part} part)' if p.part else ''} | "
                   f"{p.seconds:.2f}s |\n" for p in result.applied)
    append_step_summary(
        f"### invoke apply: {result.status} ({result.target})\n\n"
        + (f"Adopted as the state after `{result.adopted_state}`.\n\n" if result.adopted else "")
        + (f"| plan | time |\n|---|---|\n{rows}" if rows else f"At `{short(result.head)}`.")
        + (f"\n\nContract pending: `{result.contract_pending}`, runs at the next deploy."
           if result.status == "contract-pending" else "")
    )
    return errors.OK


def show_status(out: Output, result: StatusResult) -> int:
    """Print a status result; exit 0 at head, 2 with pending plans, 4 on drift."""
    code = {"head": errors.OK, "no-plans": errors.OK, "pending": errors.PENDING,
            "drift": errors.DRIFT, "ahead": errors.OK, "contract-pending": errors.OK}[result.state]
    out.json(
        "status",
        {
            "state": result.state,
            "exit_code": code,
            "target": result.target,
            "live_fingerprint": result.live_fingerprint,
            "head": result.head,
            "matches": result.matches,
            "pending": result.pending,
            "differences": result.differences,
            "message": result.message,
            "history": result.history,
            "kept": result.kept,
            "contract_pending": result.contract_pending,
            "detail": result.detail,
        },
    )
    out.text(f"target:   {result.target}")
    out.text(f"live:     {result.live_fingerprint}")
    out.text(f"head:     {result.head or '(no plans)'}")
    if result.matches:
        out.text(f"matches:  {result.matches}")
    if result.state == "head":
        out.text(out.colour("state:    at head", "green"))
    elif result.state == "contract-pending":  # healthy: the new code runs on `expanded`
        out.text(out.colour(f"state:    {result.detail}", "green"))
    elif result.state == "pending":
        out.text(out.colour(f"state:    {len(result.pending)} plan(s) pending", "yellow"))
        for name in result.pending:
            out.text(f"  - {name}")
        if result.detail:
            out.text(result.detail)
    elif result.state == "drift":
        out.text(out.colour("state:    DRIFT (matches no reviewed state)", "red"))
        for line in result.differences[:40]:
            out.text(f"  {line}")
        if len(result.differences) > 40:
            out.text(f"  … and {len(result.differences) - 40} more")
        out.text(result.message or "")
    elif result.state == "ahead":  # reached through reviewed plans: not drift (Ways back)
        out.text(out.colour("state:    ahead of these plan files (see `matches`); "
                            "`invoke rollback` can undo it", "yellow"))
    else:
        out.text("state:    no plans yet")
    for line in result.kept:
        out.text(f"kept:     {line}")
    append_step_summary(
        f"### invoke status: {result.state} ({result.target})\n\n"
        + "".join(f"- pending: `{name}`\n" for name in result.pending)
        + "".join(f"- `{line}`\n" for line in result.differences[:20])
    )
    if result.history:
        out.text("history (newest first):")
        for row in result.history:
            state = ("running, but its apply is gone (the next apply settles it)"
                     if row.get("stale") else row["status"])
            part = f" ({row['part']} part)" if row.get("part") else ""
            deployment = row.get("deployment") or row.get("git_sha")
            out.text(f"  {row['started_at']}  {state:<8} {row['plan']}{part}  "
                     f"by {row['db_user']} from {row['client_host']}"
                     + (f" (deploy {deployment})" if deployment else ""))
    return code
