"""Shared helpers for the benchmarks: timing stats, whole-process accounting, synthetic schemas.

Benchmarks report RATIOS against a baseline measured in the same run, never absolute
thresholds: the machines are noisy, ratios travel.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PYTHON = str(REPO / ".venv" / "bin" / "python")
POSTGRES_MAJOR = 15


@dataclass
class Stats:
    """min / median / max of a list of samples."""

    samples: list[float]

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)


@dataclass
class ProcessResult:
    """One whole child process, accounted like /usr/bin/time (wait4 rusage)."""

    wall: float  # seconds, perf_counter around spawn..reap
    max_rss_kb: int  # peak resident set of the child (and its reaped descendants)
    cpu: float  # user + system seconds (wait4)
    cpu_delta: float  # the same from the launcher's RUSAGE_CHILDREN before/after
    returncode: int
    stdout: str
    stderr: str


# A tiny, long-lived launcher process (python -I -S, ~8 MB) forks every measured command.
# Why not fork from here: Linux carries the RSS high-water mark of the *pre-exec* address
# space into the child's ru_maxrss (exec_mmap), and subprocess forks/vforks from this
# benchmark process, which holds SQLAlchemy & co. (~50 MB): every child would report at
# least that. A child forked by the launcher starts from the launcher's few MB instead, so
# ru_maxrss is the command's own peak, as /usr/bin/time reports it.
_LAUNCHER_CODE = r"""
import json, os, resource, sys, time
for line in sys.stdin:
    job = json.loads(line)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(job["cwd"])
            out = os.open(job["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            err = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1); os.dup2(err, 2)
            null = os.open(os.devnull, os.O_RDONLY); os.dup2(null, 0)
            os.execve(job["cmd"][0], job["cmd"], job["env"])
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sys.stdout.write(json.dumps({
        "wall": wall, "maxrss": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime,
        "cpu_delta": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "returncode": os.waitstatus_to_exitcode(status),
    }) + "\n")
    sys.stdout.flush()
"""
_launcher: subprocess.Popen | None = None


def _get_launcher() -> subprocess.Popen:
    global _launcher
    if _launcher is None or _launcher.poll() is not None:
        _launcher = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _LAUNCHER_CODE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
    return _launcher


def run_process(
    command: list[str], *, cwd: Path | str | None = None, env: dict[str, str] | None = None
) -> ProcessResult:
    """Run `command` to completion via the launcher; wall time and the child's own peak RSS.

    Accounting is /usr/bin/time's: wait4() rusage of exactly that child (peak RSS, CPU), and
    the launcher's RUSAGE_CHILDREN CPU delta as a cross-check. Wall is perf_counter around
    fork..reap inside the launcher (no launcher start-up cost in it).
    """
    launcher = _get_launcher()
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        job = {
            "cmd": [shutil.which(command[0]) or command[0], *command[1:]],
            "cwd": str(cwd or os.getcwd()),
            "env": dict(os.environ if env is None else env),
            "stdout": str(out),
            "stderr": str(err),
        }
        assert launcher.stdin is not None and launcher.stdout is not None
        launcher.stdin.write(json.dumps(job) + "\n")
        launcher.stdin.flush()
        reply = json.loads(launcher.stdout.readline())
        return ProcessResult(
            wall=reply["wall"],
            max_rss_kb=reply["maxrss"],
            cpu=reply["cpu"],
            cpu_delta=reply["cpu_delta"],
            returncode=reply["returncode"],
            stdout=out.read_text(errors="replace") if out.exists() else "",
            stderr=err.read_text(errors="replace") if err.exists() else "",
        )


def print_table(title: str, rows: list[tuple[str, Stats, str]]) -> None:
    """rows: (label, stats, unit). Prints min / median / max per row."""
    print(f"\n{title}")
    width = max(len(r[0]) for r in rows)
    print(f"  {'':{width}}  {'min':>10} {'median':>10} {'max':>10}  n")
    for label, stats, unit in rows:
        fmt = _fmt(unit)
        print(
            f"  {label:{width}}  {fmt(stats.min):>10} {fmt(stats.median):>10} "
            f"{fmt(stats.max):>10}  {len(stats.samples)}"
        )


def _fmt(unit: str):  # noqa: ANN202
    if unit == "s":
        return lambda v: f"{v:.3f}s"
    if unit == "MB":
        return lambda v: f"{v:.1f}MB"
    return lambda v: f"{v:.2f}{unit}"


def target_line(description: str, ratio: float, limit: float) -> str:
    """The final line every benchmark prints; OVER reports, it does not gate."""
    verdict = "OK" if round(ratio, 2) <= limit else "OVER"  # agree with the printed value
    return f"target: {description} ratio={ratio:.2f} limit={limit:g} {verdict}"


def quick_flag() -> bool:
    """True when --quick is on the command line."""
    return "--quick" in sys.argv[1:]


def quiet_warnings() -> None:
    """schemainspect imports pkg_resources, which warns on every import."""
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


# --- synthetic schemas ---------------------------------------------------------------------

def table_ddl(i: int) -> str:
    """DDL of synthetic table i: uuid pk, 5 columns (one a FK to table i-1), 1 index, a comment."""
    prev = f'REFERENCES "public"."t{i - 1:04d}" ("id")' if i > 0 else ""
    return f"""
CREATE TABLE "public"."t{i:04d}" (
    "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    "name" text NOT NULL,
    "amount" numeric(12,2) NOT NULL DEFAULT 0,
    "created_at" timestamp with time zone NOT NULL DEFAULT now(),
    "flag" boolean,
    "prev_id" uuid {prev}
);
CREATE INDEX "ix_t{i:04d}_name" ON "public"."t{i:04d}" ("name");
COMMENT ON TABLE "public"."t{i:04d}" IS 'synthetic table {i}';
"""


def create_synthetic_tables(conn, count: int, batch: int = 200) -> None:  # noqa: ANN001
    """Create `count` synthetic tables, `batch` per transaction (max_locks_per_transaction)."""
    for start in range(0, count, batch):
        with conn, conn.cursor() as cur:
            cur.execute("".join(table_ddl(i) for i in range(start, min(count, start + batch))))


def models_module(count: int) -> str:
    """Python source of a SQLAlchemy models module with the same shape as table_ddl."""
    lines = [
        '"""Generated by bench/plan_scale.py: synthetic models."""',
        "from sqlalchemy import (Boolean, Column, DateTime, ForeignKey, Index, MetaData, "
        "Numeric, Table, Text, func, text)",
        "from sqlalchemy.dialects.postgresql import UUID",
        "",
        "metadata = MetaData()",
        "",
    ]
    for i in range(count):
        fk = f', ForeignKey("t{i - 1:04d}.id")' if i > 0 else ""
        lines.append(
            f't{i:04d} = Table("t{i:04d}", metadata,\n'
            f'    Column("id", UUID(as_uuid=True), primary_key=True, '
            f'server_default=text("gen_random_uuid()")),\n'
            f'    Column("name", Text, nullable=False),\n'
            f'    Column("amount", Numeric(12, 2), nullable=False, server_default=text("0")),\n'
            f'    Column("created_at", DateTime(timezone=True), nullable=False, '
            f"server_default=func.now()),\n"
            f'    Column("flag", Boolean),\n'
            f'    Column("prev_id", UUID(as_uuid=True){fk}),\n'
            f'    Index("ix_t{i:04d}_name", "name"),\n'
            f'    comment="synthetic table {i}",\n'
            f")"
        )
    return "\n".join(lines) + "\n"
