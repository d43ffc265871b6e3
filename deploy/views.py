"""What `plan`, `apply`, `rollback` and `status` say: each builds one output Document.

The builders (`*_document`) decide what is said and which exit code it maps to; how it looks
in text, JSON and Markdown is deploy/output.py's. Adding a line is one `Row` in a builder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy import errors
from deploy.applier import ApplyResult
from deploy.config import Config
from deploy.output import Block, Document, Item, Row, Section, emit
from deploy.plans import short
from deploy.report import Output
from deploy.status import StatusResult

if TYPE_CHECKING:  # the planner pulls in SQLAlchemy and migra: keep them off the apply path
    from deploy.planner import PlanResult

_MARKDOWN_DIFFERENCES = 20  # drift lines listed in the step summary
_TEXT_DIFFERENCES = 40  # drift lines listed on a terminal


def show_plan(out: Output, config: Config, result: PlanResult) -> int:
    """Print a plan result; return the exit code (2 when changes are pending, else 0)."""
    return emit(out, plan_document(config, result))


def show_reverses(out: Output, config: Config, written: list[Path]) -> int:
    """Print the reverse files `plan --reverses` wrote; exit 0."""
    return emit(out, reverses_document(config, written))


def show_apply(out: Output, result: ApplyResult) -> int:
    """Print an apply result (always exit 0: failures are raised as DeployError)."""
    return emit(out, apply_document(result))


def show_rollback(out: Output, result: ApplyResult, forgotten: int | None = None) -> int:
    """Print a rollback result (always exit 0: failures are raised as DeployError)."""
    return emit(out, rollback_document(result, forgotten))


def show_status(out: Output, result: StatusResult) -> int:
    """Print a status result; exit 0 at head, 2 with pending plans, 4 on drift."""
    return emit(out, status_document(result))


# --- plan ------------------------------------------------------------------------------------


def plan_document(config: Config, result: PlanResult) -> Document:
    """`invoke plan`: the SQL, its hazards and the files written; exit 2 when pending."""
    code = errors.PENDING if result.status == "pending" else errors.OK
    hazards = [h.text for h in result.hazards]
    plan_file = _relative(config, result.plan_path) if result.plan_path else None
    snapshot = _relative(config, config.snapshot)
    title = {"up-to-date": "nothing to do", "written": "plan written",
             "pending": "changes pending"}.get(result.status, result.status)
    where = f" for {result.target}" if result.target else ""
    rows: list[Item] = [Row(note, label="note:", tone="yellow", markdown=f"> note: {note}")
                        for note in result.notes]
    if result.status == "up-to-date":
        rows.append(Row(f"Nothing to do{where}: the schema already matches the models.",
                        tone="green"))
        if result.snapshot_written:
            rows.append(Row(f"Updated {snapshot}."))
    else:
        if result.target:
            on_chain = "is" if result.target_on_chain else "is NOT"
            rows.append(Row(f"{result.target} ({short(result.from_fingerprint)}) {on_chain} a "
                            "state of the plan chain. SQL that takes it to the models:"))
        elif result.status == "pending":
            rows.append(Row("A new plan is needed. It would contain:"))
        rows.append(Block(result.sql, "sql", summary="SQL", markdown=bool(result.sql)))
        rows += [Row(text, label="hazard:", tone="red", markdown=f"- hazard: `{text}`")
                 for text in hazards]
        rows += [Row(h.text, label="in contract part, no approval needed:", tone="yellow",
                     markdown=f"- in the contract part, no approval needed: `{h.text}`")
                 for h in result.placed]
        if result.expanded_fingerprint:
            rows.append(Row(markdown=f"Two parts: expand to `{short(result.expanded_fingerprint)}`"
                            " in this deploy, contract in the next deploy, after the new code "
                            "is live."))
    files: list[Item] = []  # a section of its own: a Markdown list would swallow its lines
    if plan_file:
        middle = (f" -> {short(result.expanded_fingerprint)} (expand) -> "
                  if result.expanded_fingerprint else " -> ")
        files.append(Row(f"({short(result.from_fingerprint)}{middle}"
                         f"{short(result.to_fingerprint)}) and {snapshot}.",
                         label=f"Wrote {plan_file}", tone="green",
                         markdown=f"Wrote `{plan_file}`."))
        if hazards:
            files.append(Row("Review the hazards: approve each with an '-- approve: <same "
                             "text> -- <reason>' line in the plan header, or `invoke check` and "
                             "`invoke apply` will refuse it."))
        if result.reverse_path:
            files.append(Row(f"Wrote its reverse {_relative(config, result.reverse_path)} "
                             "(what `invoke rollback` runs; its hazards are approved the same "
                             "way before a rollback)."))
    elif result.status == "pending" and not result.target:
        files.append(Row("Run `invoke plan --name \"<what changed>\"` to write it."))
    return Document(
        "plan", code, f"invoke plan: {title}" + (f" ({result.target})" if result.target else ""),
        status=result.status,
        data={
            "from": result.from_fingerprint,
            "to": result.to_fingerprint,
            "plan_file": plan_file,
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
        sections=[Section(rows), Section(files)],
    )


def reverses_document(config: Config, written: list[Path]) -> Document:
    """`invoke plan --reverses`: the reverse files written (exit 0)."""
    names = [_relative(config, path) for path in written]
    rows = [Row(f"Wrote {name}: review its hazards (approve them like a plan's) and commit it.",
                markdown=f"- wrote `{name}`") for name in names]
    if not names:
        rows.append(Row("Every plan has a reverse; nothing written.", tone="green",
                        markdown="Every plan has a reverse; nothing written."))
    status = "reverses-written" if names else "up-to-date"
    return Document("plan", errors.OK, f"invoke plan --reverses: {status}", status=status,
                    data={"reverse_files": names}, sections=[Section(rows)])


# --- apply and rollback ----------------------------------------------------------------------


def apply_document(result: ApplyResult) -> Document:
    """`invoke apply`: the plans run (or that would run), and where the target is now."""
    adopted: list[Item] = []
    if result.adopted:
        verb = "Would adopt" if result.status == "dry-run" else "Adopted"
        adopted.append(Row(f"{verb} {result.target}: its schema is the state after "
                           f"{result.adopted_state} (recorded in the history; no DDL re-run).",
                           markdown=f"Adopted as the state after `{result.adopted_state}`."))
    rows: list[Item] = []
    plans = _plan_rows(result, would="would apply", done="applied")
    if result.status == "up-to-date":
        rows.append(Row(f"({short(result.live_fingerprint)}).", tone="green",
                        label=f"{result.target} is up to date"))
    elif result.status == "ahead":
        rows.append(Row(result.message or "", tone="yellow"))
    elif result.status == "rolled-back":  # an older deployment undid what it cannot run with
        rows.append(Row(result.message or "", tone="yellow"))
        rows.append(Row(f"{result.target} is now at {short(result.live_fingerprint)}."))
    elif result.status == "dry-run":
        if not result.applied:
            rows.append(Row(f"Dry run: {result.target} is up to date; nothing would run."))
        rows += plans
        if result.message:
            rows.append(Row(f"-- {result.message}"))
    else:
        rows += plans
        if result.status == "contract-pending":
            rows.append(Row(result.message or "", tone="yellow"))
            rows.append(Row(f"{result.target} is at {short(result.live_fingerprint)} (expanded; "
                            f"head {short(result.head)} after the contract part)."))
            rows.append(Row(markdown=f"Contract pending: `{result.contract_pending}`, runs at "
                            "the next deploy."))
        else:
            if result.message:
                rows.append(Row(result.message))
            rows.append(Row(f"{result.target} is now at {short(result.head)}.", tone="green"))
    if result.status in ("up-to-date", "ahead", "rolled-back"):  # the summary lists any run
        rows += [Row(cells=row.cells) for row in plans if isinstance(row, Row) and row.cells]
    if not result.applied:
        rows.append(Row(markdown=f"At `{short(result.head)}`."))
    return Document(
        "apply", errors.OK, f"invoke apply: {result.status} ({result.target})",
        status=result.status,
        data=_run_data(result, adopted=result.adopted, adopted_state=result.adopted_state,
                       message=result.message, contract_pending=result.contract_pending),
        sections=[Section(adopted), Section(rows, columns=["plan", "time"])],
    )


def rollback_document(result: ApplyResult, forgotten: int | None = None) -> Document:
    """`invoke rollback`: the reverses run (or that would run), or the kept rows forgotten."""
    rows: list[Item] = []
    if forgotten is not None:
        rows.append(Row(f"Removed {forgotten} row(s) of kept data from {result.target}.",
                        markdown=f"Removed {forgotten} row(s) of kept data."))
    else:
        rows += _plan_rows(result, would="would roll back", done="rolled back",
                           would_suffix=" with its reverse")
        if result.status != "dry-run":
            rows.append(Row(f"{result.target} is now at {short(result.live_fingerprint)}; "
                            "`invoke apply` brings it to the head again.", tone="green"))
    return Document(
        "rollback", errors.OK, f"invoke rollback: {result.status} ({result.target})",
        status=result.status,
        data=_run_data(result, forgotten_rows=forgotten),
        sections=[Section(rows, columns=["plan undone", "time"])],
    )


def _plan_rows(result: ApplyResult, *, would: str, done: str,
               would_suffix: str = "") -> list[Item]:
    """A dry run's plans with their statements, or the plans run with their times (both with
    a Markdown table row)."""
    rows: list[Item] = []
    for plan in result.applied:
        part = f" ({plan.part} part)" if plan.part else ""
        cells = [f"`{plan.filename}`{part}", f"{plan.seconds:.2f}s"]
        step = plan.resumed_at_step
        if result.status == "dry-run":
            resumed = f", resuming at step {step + 1}" if step is not None else ""
            rows.append(Row(f"-- {would} {plan.filename}{part} ({short(plan.from_fingerprint)} -> "
                            f"{short(plan.to_fingerprint)}{resumed}){would_suffix}", cells=cells))
            rows += [Row(statement.rstrip() + ";") for statement in plan.statements]
            rows.append(Row(""))
        else:
            resumed = f" (resumed at step {step + 1})" if step is not None else ""
            rows.append(Row(f"{done} {plan.filename}{part} in {plan.seconds:.2f}s{resumed}",
                            cells=cells))
    return rows


def _run_data(result: ApplyResult, **fields: Any) -> dict[str, Any]:
    """The JSON fields apply and rollback share (where the target stands, the plans run),
    with each command's own `fields`."""
    plans = [{"file": p.filename, "from": p.from_fingerprint, "to": p.to_fingerprint,
              "seconds": round(p.seconds, 3), "statements": list(p.statements),
              "resumed_at_step": p.resumed_at_step, "part": p.part} for p in result.applied]
    return {"target": result.target, "live_fingerprint": result.live_fingerprint,
            "head": result.head, **fields, "plans": plans}


# --- status ----------------------------------------------------------------------------------


def status_document(result: StatusResult) -> Document:
    """`invoke status`: where the live database stands; exit 0 at head, 2 pending, 4 drift."""
    code = {"head": errors.OK, "no-plans": errors.OK, "pending": errors.PENDING,
            "drift": errors.DRIFT, "ahead": errors.OK, "contract-pending": errors.OK}[result.state]
    rows = [Row(f"target:   {result.target}"), Row(f"live:     {result.live_fingerprint}"),
            Row(f"head:     {result.head or '(no plans)'}")]
    if result.matches:
        rows.append(Row(f"matches:  {result.matches}"))
    if result.state == "head":
        rows.append(Row("state:    at head", tone="green"))
    elif result.state == "contract-pending":  # healthy: the new code runs on `expanded`
        rows.append(Row(f"state:    {result.detail}", tone="green"))
    elif result.state == "pending":
        rows.append(Row(f"state:    {len(result.pending)} plan(s) pending", tone="yellow"))
        rows += [Row(f"  - {name}", markdown=f"- pending: `{name}`") for name in result.pending]
        if result.detail:
            rows.append(Row(result.detail))
    elif result.state == "drift":
        rows.append(Row("state:    DRIFT (matches no reviewed state)", tone="red"))
        rows += [Row(f"  {line}", markdown=f"- `{line}`" if n < _MARKDOWN_DIFFERENCES else None)
                 for n, line in enumerate(result.differences[:_TEXT_DIFFERENCES])]
        if len(result.differences) > _TEXT_DIFFERENCES:
            rows.append(Row(f"  … and {len(result.differences) - _TEXT_DIFFERENCES} more"))
        rows.append(Row(result.message or ""))
    elif result.state == "ahead":  # reached through reviewed plans: not drift (Ways back)
        rows.append(Row("state:    ahead of these plan files (see `matches`); "
                        "`invoke rollback` can undo it", tone="yellow"))
    else:
        rows.append(Row("state:    no plans yet"))
    rows += [Row(f"kept:     {line}") for line in result.kept]
    if result.history:
        rows.append(Row("history (newest first):"))
    for row in result.history:
        state = ("running, but its apply is gone (the next apply settles it)"
                 if row.get("stale") else row["status"])
        part = f" ({row['part']} part)" if row.get("part") else ""
        deployment = row.get("deployment") or row.get("git_sha")
        rows.append(Row(f"  {row['started_at']}  {state:<8} {row['plan']}{part}  "
                        f"by {row['db_user']} from {row['client_host']}"
                        + (f" (deploy {deployment})" if deployment else "")))
    return Document(
        "status", code, f"invoke status: {result.state} ({result.target})",
        data={
            "state": result.state,
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
        sections=[Section(rows)],
    )


def _relative(config: Config, path: object) -> str:
    try:
        return Path(path).relative_to(config.root).as_posix()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(path)
