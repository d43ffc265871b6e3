"""How `rollback` and `plan --reverses` results are shown (kept apart from views.py)."""

from __future__ import annotations

from pathlib import Path

from deploy import errors
from deploy.applier import ApplyResult
from deploy.config import Config
from deploy.plans import short
from deploy.report import Output, append_step_summary


def show_reverses(out: Output, config: Config, written: list[Path]) -> int:
    """Print the reverse files `plan --reverses` wrote; exit 0."""
    names = [str(p.relative_to(config.root)) if p.is_relative_to(config.root) else str(p)
             for p in written]
    out.json("plan", {"status": "reverses-written" if names else "up-to-date",
                      "exit_code": errors.OK, "reverse_files": names})
    if not names:
        out.text(out.colour("Every plan has a reverse; nothing written.", "green"))
    for name in names:
        out.text(f"Wrote {name}: review its hazards (approve them like a plan's) and commit it.")
    return errors.OK


def show_rollback(out: Output, result: ApplyResult, forgotten: int | None = None) -> int:
    """Print a rollback result (always exit 0: failures are raised as DeployError)."""
    out.json("rollback", {
        "status": result.status,
        "exit_code": errors.OK,
        "target": result.target,
        "live_fingerprint": result.live_fingerprint,
        "head": result.head,
        "forgotten_rows": forgotten,
        "plans": [{"file": p.filename, "from": p.from_fingerprint, "to": p.to_fingerprint,
                   "seconds": round(p.seconds, 3), "statements": list(p.statements)}
                  for p in result.applied],
    })
    if forgotten is not None:
        out.text(f"Removed {forgotten} row(s) of kept data from {result.target}.")
        return errors.OK
    if result.status == "dry-run":
        for plan in result.applied:
            out.text(f"-- would roll back {plan.filename} ({short(plan.from_fingerprint)} -> "
                     f"{short(plan.to_fingerprint)}) with its reverse")
            for statement in plan.statements:
                out.text(statement.rstrip() + ";")
            out.text("")
    else:
        for plan in result.applied:
            out.text(f"rolled back {plan.filename} in {plan.seconds:.2f}s")
        out.text(out.colour(f"{result.target} is now at {short(result.live_fingerprint)}; "
                            "`invoke apply` brings it to the head again.", "green"))
    rows = "".join(f"| `{p.filename}` | {p.seconds:.2f}s |\n" for p in result.applied)
    append_step_summary(f"### invoke rollback: {result.status} ({result.target})\n\n"
                        + (f"| plan undone | time |\n|---|---|\n{rows}" if rows else ""))
    return errors.OK
