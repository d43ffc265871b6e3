"""Command line: `invoke plan | apply | rollback | status | check | serve | sandbox`.

Thin by design: parse flags, call `deploy`, print, map the result to an exit code
(0 ok, 1 error, 2 changes pending, 3 unapproved hazard, 4 drift).
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

# invoke turns bytecode caching off (it would litter .pyc next to tasks.py). The engine and
# the models are imported by every command: keeping their bytecode saves 0.1-0.2 s each time.
sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))

from invoke import Exit, task  # noqa: E402

from deploy import cli  # noqa: E402
from deploy.config import Config, load_config  # noqa: E402
from deploy.errors import ERROR, DeployError  # noqa: E402
from deploy.report import Output  # noqa: E402

_SCRATCH_HELP = "where to build scratch schemas: auto (default), local, docker or url"
_FORMAT_HELP = "text (default) or json"
_NO_CACHE_HELP = "ignore the cache of verified model and plan states (recompute everything)"


def _run(command: str, fmt: str, work: Callable[[Config, Output], int]) -> None:
    """Run one task: a DeployError becomes its message and exit code; a bug is reported masked."""
    out = Output(fmt) if fmt in ("text", "json") else Output()
    try:
        if fmt != out.format:
            raise DeployError(f"Unknown --format {fmt!r}: use text or json.")
        code = work(load_config(), out)
    except DeployError as exc:
        out.error(command, exc)
        raise Exit(code=exc.exit_code) from None
    except (Exit, KeyboardInterrupt):
        raise
    except BrokenPipeError:  # the reader went away (`| head`): nothing left to say to it
        cli.silence(out.out)
        raise Exit(code=ERROR) from None
    except Exception as exc:  # a bug: still say what happened, and never print a password
        out.error(command, DeployError(
            f"Unexpected {type(exc).__name__}: {exc}. This is a bug in the deploy tool: please "
            "report it with the traceback below. `plan` writes its files all at once or not at "
            "all; run `git status` to see what changed.",
            details=traceback.format_exc(),
        ))
        raise Exit(code=ERROR) from None
    finally:
        # The process ends next. Collecting a big app's models at exit costs ~1 s at 1000
        # tables and frees nothing the OS would not; frozen objects are skipped.
        gc.freeze()
    if code:
        raise Exit(code=code)


@task(
    help={
        "name": "a short description of the change; becomes the plan's title and file name",
        "check": "write nothing; exit 2 when a plan would be written, 0 when none is needed",
        "target": "read-only: print the SQL that takes this live database to the models",
        "scratch": _SCRATCH_HELP,
        "sql_file": "use this hand-written SQL as the plan body; it is verified before saving",
        "no_online": "plain (blocking) forms for existing tables: no CONCURRENTLY, NOT VALID, …",
        "no_contract": "one-part plan: no contract part for the next deploy (drops run now)",
        "format": _FORMAT_HELP,
        "no_cache": _NO_CACHE_HELP,
        "reverses": "only write the missing reverse plans (schema/plans/reverse/) of the chain",
    }
)
def plan(  # noqa: PLR0913
    c, name="", check=False, target="", scratch="", sql_file="", no_online=False,
    no_contract=False, format="text",  # noqa: A002
    no_cache=False, reverses=False,
):
    """Preview and save the next schema change as a reviewed plan file."""

    def work(config: Config, out: Output) -> int:
        from deploy.planner import make_plan
        from deploy.views import show_plan

        if reverses:
            from deploy.reverse import write_missing
            from deploy.views import show_reverses

            return show_reverses(out, config, write_missing(config, scratch or None,
                                                            out.progress))

        result = make_plan(
            config,
            name=name or None,
            scratch=scratch or None,
            check=check,
            target=target or None,
            sql_file=Path(sql_file) if sql_file else None,
            online=False if no_online else None,
            contract=False if no_contract else None,
            progress=out.progress,
            use_cache=not no_cache,
        )
        return show_plan(out, config, result)

    _run("plan", format, work)


@task(
    help={
        "target": "database URL (default: $DATABASE_URL)",
        "wait": "seconds to keep retrying the connection, e.g. 30 or 2.5 (default 30)",
        "lock_timeout": "lock_timeout for plan statements, e.g. 5s (default from config)",
        "statement_timeout": "statement_timeout for plan statements (default from config)",
        "retries": "attempts per plan when a lock wait times out (default 5)",
        "dry_run": "print the plans and statements that would run; change nothing",
        "contract": "run pending contract parts now (only once no running code uses what they "
                    "drop); default: a later deploy runs them",
        "format": _FORMAT_HELP,
    }
)
def apply(  # noqa: PLR0913
    c, target="", wait="30", lock_timeout="", statement_timeout="", retries="5", dry_run=False,
    contract=False, format="text",  # noqa: A002
):
    """Apply the reviewed plans to the target database (Railway pre-deploy step)."""

    def work(config: Config, out: Output) -> int:
        from deploy.applier import apply_plans
        from deploy.views import show_apply

        result = apply_plans(config, force_contract=contract, **_apply_options(
            target, wait, lock_timeout, statement_timeout, retries, dry_run, out))
        return show_apply(out, result)

    _run("apply", format, work)


def _apply_options(  # noqa: PLR0913
    target: str, wait: str, lock_timeout: str, statement_timeout: str, retries: str,
    dry_run: bool, out: Output,
) -> dict:
    """apply_plans' keyword arguments from the flags apply and rollback share (parsed once)."""
    return {
        "target": target or None,
        "wait": cli.seconds("wait", wait),
        "lock_timeout": lock_timeout or None,
        "statement_timeout": statement_timeout or None,
        "retries": cli.count("retries", retries),
        "dry_run": dry_run,
        "progress": out.progress,
    }


@task(
    help={
        "target": "database URL (default: $DATABASE_URL)",
        "to": "plan file (the state after it) or fingerprint to return to (default: undo the "
              "last applied plan)",
        "wait": "seconds to keep retrying the connection, e.g. 30 or 2.5 (default 30)",
        "lock_timeout": "lock_timeout for reverse statements, e.g. 5s (default from config)",
        "statement_timeout": "statement_timeout for reverse statements (default from config)",
        "retries": "attempts per reverse when a lock wait times out (default 5)",
        "dry_run": "print the reverses and statements that would run; change nothing",
        "forget": "only delete the data kept from dropped columns/tables (no rollback)",
        "format": _FORMAT_HELP,
    }
)
def rollback(  # noqa: PLR0913
    c, target="", to="", wait="30", lock_timeout="", statement_timeout="", retries="5",
    dry_run=False, forget=False, format="text",  # noqa: A002
):
    """Undo applied plans with their reviewed reverses (default: the last applied plan)."""

    def work(config: Config, out: Output) -> int:
        import functools

        from deploy.applier import apply_plans
        from deploy.rollback import forget_action, rollback_action
        from deploy.views import show_rollback

        holder: dict[str, int] = {}
        action = (functools.partial(forget_action, holder=holder) if forget
                  else functools.partial(rollback_action, to=to or None))
        result = apply_plans(config, action=action, **_apply_options(
            target, wait, lock_timeout, statement_timeout, retries, dry_run, out))
        return show_rollback(out, result, holder.get("rows"))

    _run("rollback", format, work)


@task(
    help={
        "target": "database URL (default: $DATABASE_URL)",
        "wait": "seconds to keep retrying the connection (default 10)",
        "format": _FORMAT_HELP,
    }
)
def status(c, target="", wait="10", format="text"):  # noqa: A002
    """Show where the live database stands: head, pending plans, or drift."""

    def work(config: Config, out: Output) -> int:
        from deploy.status import read_status
        from deploy.views import show_status

        seconds = cli.seconds("wait", wait)
        result = read_status(config, target=target or None, wait=seconds, progress=out.progress)
        return show_status(out, result)

    _run("status", format, work)


@task(
    help={
        "scratch": _SCRATCH_HELP,
        "target": "also check that this live database (read-only) is on a path to head",
        "format": _FORMAT_HELP,
        "no_cache": _NO_CACHE_HELP,
    }
)
def check(c, scratch="", target="", format="text", no_cache=False):  # noqa: A002
    """CI gate: fail on unreviewed drift and on unapproved dangerous changes."""

    def work(config: Config, out: Output) -> int:
        from deploy.check_report import show_check
        from deploy.checker import run_check

        result = run_check(
            config, scratch=scratch or None, target=target or None, progress=out.progress,
            use_cache=not no_cache,
        )
        return show_check(out, config, result)

    _run("check", format, work)


@task(help={"port": "port to listen on (default: $PORT or 8080)"})
def serve(c, port=""):
    """Serve /healthz (200 only at head) and /status (JSON) for Railway's health check.

    /status shows only state and head unless the request sends
    `Authorization: Bearer $DEPLOY_STATUS_TOKEN`.
    """

    def work(config: Config, out: Output) -> int:
        from deploy.health import serve as serve_health

        serve_health(config, port=cli.port(port))
        return 0

    _run("serve", "text", work)


@task(help={"scratch": "auto (default), local or docker: where the throwaway server runs"})
def sandbox(c, scratch=""):
    """Start a throwaway local database for trying apply, status and serve; Ctrl-C deletes it."""

    def work(config: Config, out: Output) -> int:
        from deploy.sandbox import run_sandbox

        run_sandbox(config, out.out, scratch=scratch or None, progress=out.progress)
        return 0

    _run("sandbox", "text", work)
