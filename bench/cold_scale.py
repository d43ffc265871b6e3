"""Cold first `invoke plan` and cold `invoke check` at 1000 and 2000 tables vs the floor.

Whole processes, fresh each run, empty cache (a new SCHEMA_DEPLOY_CACHE_DIR per run), on a
generated project (bench/_common.models_module). Baseline, measured in the same run and
interleaved: the *floor*, one process doing what any "models -> SQL" tool must: import the
models, start a local scratch server, `create_all` into one database, ONE migra diff from an
empty database to it. Targets (issue 10): cold plan and cold check <= 1.5x the floor's
median wall time at each size; peak RSS of the plan <= 1.3x the floor's at 1000 tables.

Also printed (information): the first `check` right after a plan with the plan's cache (it
answers without a scratch server when the plan recorded its proof), and, with --profile,
the plan's phases by progress message.

    .venv/bin/python bench/cold_scale.py [--quick] [--tables N[,M]] [--reps R] [--profile]
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from _common import (
    PYTHON,
    REPO,
    Stats,
    models_module,
    print_table,
    quick_flag,
    run_process,
    target_line,
)

TIME_LIMIT = 1.5
RSS_LIMIT = 1.3
MODULE = "bench_generated_models"

PYPROJECT = f"""\
[project]
name = "cold-scale-bench"
version = "0"

[tool.deploy]
metadata = "{MODULE}:metadata"
sql = "sql"
plans = "plans"
snapshot = "schema.sql"
postgres = 15
scratch = "local"
"""

# The floor, as its own process (sys.argv[1]: the project; sys.argv[2]: this repository,
# for deploy.scratch's local server, the same server the engine uses).
FLOOR = f"""
import importlib, sys, warnings
warnings.filterwarnings("ignore")
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from migra import Migration
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool
from deploy import urls
from deploy.scratch import open_scratch
metadata = importlib.import_module({MODULE!r}).metadata
with open_scratch("local", 15) as server:
    engines = [create_engine(urls.sqlalchemy_url(server.create_database(name)),
                             poolclass=NullPool) for name in ("empty", "desired")]
    with engines[1].begin() as conn:
        metadata.create_all(conn, checkfirst=False)
    with engines[0].connect() as empty, engines[1].connect() as desired:
        migration = Migration(empty, desired)
        migration.set_safety(False)
        migration.add_all_changes()
        sql = migration.sql
    for engine in engines:
        engine.dispose()
print(sql.lower().count("create table"))
"""


def invoke(*args: str) -> list[str]:
    """The command line a user runs, with this repository's tasks.py."""
    return [PYTHON, "-m", "invoke", "--search-root", str(REPO), *args]


def run_ok(command: list[str], cwd: Path, env: dict[str, str], allowed=(0,)):  # noqa: ANN001, ANN201
    """run_process, stopping the benchmark when the command fails."""
    result = run_process(command, cwd=cwd, env=env)
    if result.returncode not in allowed:
        raise SystemExit(f"{' '.join(command[-3:])} exited {result.returncode}:\n"
                         f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


def write_project(root: Path, tables: int) -> Path:
    """A throwaway project: pyproject [tool.deploy], generated models, an empty plans dir."""
    (root / "plans").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / f"{MODULE}.py").write_text(models_module(tables))
    return root


def reset_plans(project: Path) -> None:
    """Back to a project with no plans and no snapshot: the next plan is a first plan."""
    shutil.rmtree(project / "plans")
    (project / "plans").mkdir()
    for name in ("schema.sql", "schema.json"):
        (project / name).unlink(missing_ok=True)


def phases(stderr: str, wall: float) -> list[tuple[float, str]]:
    """(seconds spent after it, message) for each `[  1.2s] message` progress line; the last
    one runs until the process ended (`wall`)."""
    marks = [(float(m.group(1)), m.group(2)) for m in
             re.finditer(r"^\[\s*([\d.]+)s\] (.*)$", stderr, re.MULTILINE)]
    ends = [at for at, _ in marks[1:]] + [wall]
    return [(end - at, msg) for (at, msg), end in zip(marks, ends, strict=True)]


def at_size(tmp: Path, env: dict[str, str], tables: int, reps: int, profile: bool) -> dict:
    """Interleaved: floor, cold plan, cold check, first check after the plan; `reps` each."""
    project = write_project(tmp / f"project-{tables}", tables)
    floor_file = tmp / "floor.py"
    floor_file.write_text(FLOOR)
    floor_cmd = [PYTHON, str(floor_file), str(project), str(REPO)]
    # Warm-up (not counted): page cache, .pyc files, the initdb template of deploy.scratch.
    run_ok(floor_cmd, project, env)
    floors, plans, checks, after = [], [], [], []
    for number in range(reps):
        floor = run_ok(floor_cmd, project, env)
        assert floor.stdout.split()[-1] == str(tables), floor.stdout
        floors.append(floor)
        reset_plans(project)
        cache = tmp / f"cache-{tables}-{number}"
        plan = run_ok(invoke("plan", "--name", "initial"), project,
                      {**env, "SCHEMA_DEPLOY_CACHE_DIR": str(cache)})
        plans.append(plan)
        # Cold check: the plan just written, nothing cached.
        checks.append(run_ok(invoke("check"), project,
                             {**env, "SCHEMA_DEPLOY_CACHE_DIR": str(cache) + "-check"}))
        # The first check after the plan, with the plan's cache (what a developer runs next).
        after.append(run_ok(invoke("check"), project,
                            {**env, "SCHEMA_DEPLOY_CACHE_DIR": str(cache)}))
    print(f"\n{tables} tables: cold first plan and cold check vs the floor "
          f"({reps} interleaved runs each, fresh processes, empty cache)")
    rows = {"floor (server+import+create_all+1 migra)": floors,
            "invoke plan (first, cold)": plans, "invoke check (cold)": checks,
            "invoke check (right after plan)": after}
    print_table("whole process wall time", [(k, Stats([r.wall for r in v]), "s")
                                            for k, v in rows.items()])
    print_table("peak RSS", [(k, Stats([r.max_rss_kb / 1024 for r in v]), "MB")
                             for k, v in rows.items()])
    answered = sum("no scratch server needed" in r.stderr for r in after)
    print(f"  check right after plan answered from the cache in {answered}/{reps} runs")
    if profile:
        print("\n  phases of the last cold plan (s after each progress message):")
        for seconds, message in phases(plans[-1].stderr, plans[-1].wall):
            print(f"    {seconds:7.2f}s  {message[:70]}")
        print("  phases of the last cold check:")
        for seconds, message in phases(checks[-1].stderr, checks[-1].wall):
            print(f"    {seconds:7.2f}s  {message[:70]}")
    floor_wall = Stats([r.wall for r in floors]).median
    return {
        "plan": Stats([r.wall for r in plans]).median / floor_wall,
        "check": Stats([r.wall for r in checks]).median / floor_wall,
        "rss": Stats([r.max_rss_kb for r in plans]).median
        / Stats([r.max_rss_kb for r in floors]).median,
    }


def main() -> int:
    quick = quick_flag()
    sizes = [200] if quick else [1000, 2000]
    if "--tables" in sys.argv:
        sizes = [int(n) for n in sys.argv[sys.argv.index("--tables") + 1].split(",")]
    reps = 1 if quick else 3
    if "--reps" in sys.argv:
        reps = int(sys.argv[sys.argv.index("--reps") + 1])
    profile = "--profile" in sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp_name:
        tmp = Path(tmp_name)
        # As on a developer's machine: bytecode cached, for both processes alike.
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "PYTHONDONTWRITEBYTECODE")}
        env.update(NO_COLOR="1", PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
        results = {tables: at_size(tmp, env, tables, reps, profile) for tables in sizes}
    print()
    worst = 0.0
    for tables, ratios in results.items():
        for what in ("plan", "check"):
            print(target_line(f"cold {what} at {tables} tables vs the floor", ratios[what],
                              TIME_LIMIT))
            worst = max(worst, ratios[what] / TIME_LIMIT)
    rss_size = 1000 if 1000 in results else max(results)
    print(target_line(f"peak RSS of plan at {rss_size} tables vs the floor's",
                      results[rss_size]["rss"], RSS_LIMIT))
    worst = max(worst, results[rss_size]["rss"] / RSS_LIMIT)
    print(target_line("cold plan/check time (/1.5) and plan RSS (/1.3) vs the floor, worst",
                      worst, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
