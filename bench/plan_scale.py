"""`make_plan(config, check=True, scratch="local")` on a generated 200-table project.

The first plan of a project (no plans yet), timed in-process. Baseline, same run: the
irreducible work of any "models -> SQL" tool, done directly with the same libraries:
import the models, start a local scratch server, create_all the metadata into one
database, one migra diff from an empty database to it. The ratio is our overhead: replay,
proof on a template copy, the snapshot diff, fingerprints, hazard classification.

    .venv/bin/python bench/plan_scale.py [--quick] [--profile]
"""

from __future__ import annotations

import importlib
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    POSTGRES_MAJOR,
    Stats,
    models_module,
    print_table,
    quick_flag,
    quiet_warnings,
    target_line,
)

TABLES = 200
LIMIT = 3.0
MODULE = "bench_generated_models"

PYPROJECT = f"""\
[project]
name = "plan-scale-bench"
version = "0"

[tool.deploy]
metadata = "{MODULE}:metadata"
sql = "sql"
plans = "plans"
snapshot = "schema.sql"
postgres = {POSTGRES_MAJOR}
scratch = "local"
"""


def write_project(root: Path) -> Path:
    """A throwaway project: pyproject [tool.deploy], a generated models module, no plans."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / f"{MODULE}.py").write_text(models_module(TABLES))
    (root / "plans").mkdir()
    return root


def baseline(root: Path) -> float:
    """Import models + local scratch server + create_all + one migra diff from empty."""
    from migra import Migration
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from deploy import urls
    from deploy.scratch import open_scratch

    started = time.perf_counter()
    sys.modules.pop(MODULE, None)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    metadata = importlib.import_module(MODULE).metadata
    with open_scratch("local", POSTGRES_MAJOR) as server:
        empty_url = server.create_database("empty")
        desired_url = server.create_database("desired")
        engines = [create_engine(urls.sqlalchemy_url(u), poolclass=NullPool)
                   for u in (empty_url, desired_url)]
        try:
            with engines[1].begin() as conn:
                metadata.create_all(conn, checkfirst=False)
            with engines[0].connect() as empty, engines[1].connect() as desired:
                migration = Migration(empty, desired)
                migration.set_safety(False)
                migration.add_all_changes()
                sql = migration.sql
        finally:
            for engine in engines:
                engine.dispose()
    elapsed = time.perf_counter() - started
    assert sql.lower().count("create table") == TABLES, "baseline diff is incomplete"
    return elapsed


def ours(config, phases: list[dict[str, float]]) -> float:  # noqa: ANN001
    """make_plan(check=True), with the time between its progress messages recorded."""
    from deploy.planner import make_plan

    marks: list[tuple[float, str]] = []
    started = time.perf_counter()
    result = make_plan(
        config, check=True, scratch="local",
        progress=lambda msg: marks.append((time.perf_counter(), msg)),
    )
    elapsed = time.perf_counter() - started
    assert result.status == "pending", result.status
    assert result.sql.lower().count("create table") == TABLES, "plan is incomplete"
    phases.append(_phases(started, marks, started + elapsed))
    return elapsed


def _phases(started: float, marks: list[tuple[float, str]], ended: float) -> dict[str, float]:
    """Seconds spent after each progress message (until the next one, or the end)."""
    result: dict[str, float] = {}
    label, since = "start (load config, plans, models; start scratch server)", started
    for at, msg in marks:
        result[label] = result.get(label, 0.0) + at - since
        label, since = re.sub(r"\d+(\.\d+)?s?", "#", msg)[:62], at
    result[label] = result.get(label, 0.0) + ended - since
    return result


def main() -> int:
    quick = quick_flag()
    profile = "--profile" in sys.argv[1:]
    reps = 2 if quick else 5
    quiet_warnings()
    from deploy.config import load_config

    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        root = write_project(Path(tmp) / "project")
        config = load_config(root)
        warm_phases: list[dict[str, float]] = []
        # Warm-up: imports (migra, schemainspect), the initdb cache, page cache.
        baseline(root)
        ours(config, warm_phases)
        base_times, our_times, phases = [], [], []
        for _ in range(reps):
            base_times.append(baseline(root))
            our_times.append(ours(config, phases))
        if profile:
            profile_plan(config)

    ours_s, base_s = Stats(our_times), Stats(base_times)
    ratio = ours_s.median / base_s.median
    print(f"first plan of a {TABLES}-table project ({reps} interleaved runs each)")
    print_table("in-process wall time", [
        ("make_plan(check=True)", ours_s, "s"),
        ("baseline (server+create_all+migra)", base_s, "s"),
    ])
    print("\n  make_plan phases (median s, by progress message):")
    for label in phases[0]:
        values = [p.get(label, 0.0) for p in phases]
        print(f"    {statistics.median(values):7.3f}s  {label}")
    print(f"\n  median ratio {ratio:.2f} (limit {LIMIT:g})")
    print(target_line(
        f"make_plan first plan at {TABLES} tables vs scratch+create_all+migra", ratio, LIMIT
    ))
    return 0


def profile_plan(config) -> None:  # noqa: ANN001
    """Top functions of one make_plan by cumulative time (engine, migra, schemainspect, DB)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    ours(config, [])
    profiler.disable()
    stats = pstats.Stats(profiler)
    interesting = ("deploy/", "migra/", "schemainspect/", "sqlalchemy/sql/schema", "subprocess")
    rows = [
        (cum, calls, f"{file.split('site-packages/')[-1].split('/work/main/')[-1]}:{line}({name})")
        for (file, line, name), (_, calls, _, cum, _) in stats.stats.items()
        if any(part in file for part in interesting) or "execute' of 'psycopg2" in name
    ]
    rows.sort(reverse=True)
    print("\n  cProfile of one make_plan, top 25 by cumulative time:")
    for cum, calls, where in rows[:25]:
        print(f"    {cum:7.3f}s {calls:6d}x  {where}")


if __name__ == "__main__":
    sys.exit(main())
