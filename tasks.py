"""Command line: `invoke plan | apply | status | check | serve`.

Thin by design: parse flags, call `deploy`, print, map the result to an exit code
(0 ok, 1 error, 2 changes pending, 3 unapproved hazard, 4 drift).
"""

from __future__ import annotations

from pathlib import Path

from invoke import Exit, task

from deploy import errors
from deploy.config import load_config
from deploy.errors import DeployError
from deploy.report import Output

_SCRATCH_HELP = "where to build scratch schemas: auto (default), local, docker or url"
_FORMAT_HELP = "text (default) or json"


def _fail(out: Output, command: str, exc: DeployError) -> None:
    out.error(command, exc)
    raise Exit(code=exc.exit_code)


@task(
    help={
        "name": "a short description of the change; becomes the plan's title and file name",
        "check": "write nothing; exit 2 when a plan would be written, 0 when none is needed",
        "target": "read-only: print the SQL that takes this live database to the models",
        "scratch": _SCRATCH_HELP,
        "sql_file": "use this hand-written SQL as the plan body; it is verified before saving",
        "format": _FORMAT_HELP,
    }
)
def plan(c, name="", check=False, target="", scratch="", sql_file="", format="text"):  # noqa: A002
    """Preview and save the next schema change as a reviewed plan file."""
    from deploy.planner import make_plan
    from deploy.views import show_plan

    out = Output(format)
    try:
        config = load_config()
        result = make_plan(
            config,
            name=name or None,
            scratch=scratch or None,
            check=check,
            target=target or None,
            sql_file=Path(sql_file) if sql_file else None,
            progress=out.progress,
        )
    except DeployError as exc:
        _fail(out, "plan", exc)
    code = show_plan(out, config, result)
    if code:
        raise Exit(code=code)


@task(
    help={
        "target": "database URL (default: $DATABASE_URL)",
        "wait": "seconds to keep retrying the connection (default 30)",
        "lock_timeout": "lock_timeout for plan statements, e.g. 5s (default from config)",
        "statement_timeout": "statement_timeout for plan statements (default from config)",
        "retries": "attempts per plan when a lock wait times out (default 5)",
        "dry_run": "print the plans and statements that would run; change nothing",
        "format": _FORMAT_HELP,
    }
)
def apply(  # noqa: PLR0913
    c, target="", wait=30, lock_timeout="", statement_timeout="", retries=5, dry_run=False,
    format="text",  # noqa: A002
):
    """Apply the reviewed plans to the target database (Railway pre-deploy step)."""
    from deploy.applier import apply_plans
    from deploy.views import show_apply

    out = Output(format)
    try:
        config = load_config()
        result = apply_plans(
            config,
            target=target or None,
            wait=float(wait),
            lock_timeout=lock_timeout or None,
            statement_timeout=statement_timeout or None,
            retries=int(retries),
            dry_run=dry_run,
            progress=out.progress,
        )
    except DeployError as exc:
        _fail(out, "apply", exc)
    show_apply(out, result)


@task(
    help={
        "target": "database URL (default: $DATABASE_URL)",
        "wait": "seconds to keep retrying the connection (default 10)",
        "format": _FORMAT_HELP,
    }
)
def status(c, target="", wait=10, format="text"):  # noqa: A002
    """Show where the live database stands: head, pending plans, or drift."""
    from deploy.applier import read_status
    from deploy.views import show_status

    out = Output(format)
    try:
        config = load_config()
        result = read_status(config, target=target or None, wait=float(wait))
    except DeployError as exc:
        _fail(out, "status", exc)
    code = show_status(out, result)
    if code:
        raise Exit(code=code)


@task(
    help={
        "scratch": _SCRATCH_HELP,
        "target": "also check that this live database (read-only) is on a path to head",
        "format": _FORMAT_HELP,
    }
)
def check(c, scratch="", target="", format="text"):  # noqa: A002
    """CI gate: fail on unreviewed drift and on unapproved dangerous changes."""
    from deploy.check_report import show_check
    from deploy.checker import run_check

    out = Output(format)
    try:
        config = load_config()
        result = run_check(
            config, scratch=scratch or None, target=target or None, progress=out.progress
        )
    except DeployError as exc:
        _fail(out, "check", exc)
    code = show_check(out, config, result)
    if code:
        raise Exit(code=code)


@task(help={"port": "port to listen on (default: $PORT or 8080)"})
def serve(c, port=0):
    """Serve /healthz (200 only at head) and /status (JSON) for Railway's health check."""
    from deploy.health import serve as serve_health

    try:
        serve_health(load_config(), port=int(port) or None)
    except DeployError as exc:
        _fail(Output(), "serve", exc)


# Keep `errors` imported for readers: it documents the exit codes this module maps to.
__all__ = ["apply", "check", "errors", "plan", "serve", "status"]
