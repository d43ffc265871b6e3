"""Typos on the command line are one-paragraph errors (exit 1), never tracebacks; a reader
that goes away (`| head -1`) ends the output quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, Databases, run_invoke

REFUSING = "postgresql://app@127.0.0.1:1/app"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("apply", "--wait", "abc"), "--wait 'abc' is not a number of seconds"),
        (("apply", "--wait", "nan"), "--wait 'nan' is not a number of seconds"),
        (("apply", "--wait", "-3"), "--wait '-3' is not a number of seconds"),
        (("status", "--wait", "inf"), "--wait 'inf' is not a number of seconds"),
        (("apply", "--retries", "x"), "--retries 'x' is not a whole number"),
        (("apply", "--retries", "2.5"), "--retries '2.5' is not a whole number"),
        (("serve", "--port", "99999"), "--port '99999' is not a TCP port"),
        (("serve", "--port", "http"), "--port 'http' is not a TCP port"),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, tuple) else None,
)
def test_bad_flag_values_are_one_paragraph_errors(
    project: Path, args: tuple[str, ...], expected: str
) -> None:
    extra = () if args[0] == "serve" else ("--target", REFUSING)
    done = run_invoke(project, *args, *extra, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "ValueError" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("error: ") and expected in lines[0]


def test_fractional_wait_is_accepted(project: Path) -> None:
    done = run_invoke(project, "status", "--target", REFUSING, "--wait", "0.5")
    assert done.returncode == 1
    assert "Cannot connect to 127.0.0.1:1/app" in done.stderr
    assert "Traceback" not in done.stderr


def _into_closed_pipe(project: Path, *args: str) -> tuple[int, str]:
    """Run `invoke ARGS` with stdout a pipe whose reader has already gone (what `| head -1`
    becomes once head has its line); return (exit code, stderr)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args], cwd=project,
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
            env={**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, "NO_COLOR": "1"},
        )
    finally:
        os.close(write_end)
    return done.returncode, done.stderr


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_dry_run_into_a_closed_pipe_exits_quietly(pg: Databases, project: Path, fmt: str) -> None:
    url = pg.new("pipe")
    code, stderr = _into_closed_pipe(project, "apply", "--dry-run", "--target", url,
                                     "--format", fmt)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "error" not in stderr
    assert "Exception ignored" not in stderr
    assert code == 0


def test_status_into_a_closed_pipe_keeps_its_exit_code(pg: Databases, project: Path) -> None:
    url = pg.new("pipe_status")  # empty database: every plan is pending (exit 2)
    code, stderr = _into_closed_pipe(project, "status", "--target", url)
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert code == 2


def test_head_gets_the_first_line_of_a_dry_run(pg: Databases, project: Path) -> None:
    url = pg.new("pipe_head")
    done = subprocess.run(
        f"{sys.executable} -m invoke --search-root {REPO} apply --dry-run --target '{url}' "
        "| head -1; exit ${PIPESTATUS[0]}",
        shell=True, executable="/bin/bash", cwd=project, capture_output=True, text=True,
        timeout=120,
    )
    assert done.stdout.startswith("-- would apply") and done.stdout.count("\n") == 1
    assert done.returncode == 0 and "Traceback" not in done.stderr
