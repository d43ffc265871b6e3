"""`invoke apply` on a database already at head, as a whole process (Railway pre-deploy case).

Baseline, same run, same database: a bare python process that imports psycopg2, connects
and runs `select 1`. Reports the median wall-time ratio and the median peak-RSS ratio, and
which modules the apply process spends its import time on (`-X importtime`).

    .venv/bin/python bench/apply_noop.py [--quick]
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

from _common import (
    POSTGRES_MAJOR,
    PYTHON,
    REPO,
    Stats,
    print_table,
    quick_flag,
    run_process,
    target_line,
)

WALL_LIMIT = 6.0  # floor (same work, no SQLAlchemy) measures ~4.4; see bench/README.md
RSS_LIMIT = 2.0  # floor measures ~1.77; RSS is stable to ~1%

BASELINE_CODE = (
    "import json, sys, psycopg2; c = psycopg2.connect(**json.loads(sys.argv[1])); "
    "c.cursor().execute('select 1')"
)

# Informational: the work a no-op apply needs (invoke, plan files parsed, one connection, the
# live fingerprint) without SQLAlchemy; shows what the wall limit is measured against.
FLOOR_CODE = """
import json, sys
from pathlib import Path
import invoke, psycopg2
from deploy.fingerprint import Exclusions, describe, fingerprint
from deploy.plans import build_graph, load_plans
graph = build_graph(load_plans(Path(sys.argv[2])))
conn = psycopg2.connect(**json.loads(sys.argv[1]))
live = fingerprint(describe(conn, Exclusions(("schema_deploy",), ("alembic_version",))))
assert graph.path(live) == [], "floor: the database is not at head"
assert "sqlalchemy" not in sys.modules, "floor: something imported SQLAlchemy"
"""


def main() -> int:
    quick = quick_flag()
    reps = 5 if quick else 15
    from deploy import urls
    from deploy.scratch import open_scratch
    from tests.conftest import copy_project

    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp, open_scratch(
        "local", POSTGRES_MAJOR
    ) as server:
        # As a user runs it. Note: invoke sets sys.dont_write_bytecode unless --write-pyc, so
        # tasks.py and deploy/*.py are compiled from source on every run unless the image ships
        # their .pyc; site-packages have theirs from pip. The informational row measures that
        # "all bytecode cached" case (--write-pyc into a private prefix: nothing written to
        # the repository).
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env["NO_COLOR"] = "1"
        pyc_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        pyc_env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        project = copy_project(Path(tmp) / "project")
        url = server.create_database("target")
        target = urls.sqlalchemy_url(url).replace("postgresql+psycopg2://", "postgresql://", 1)
        dsn = json.dumps(urls.psycopg2_dsn(url))
        apply_cmd = [PYTHON, "-m", "invoke", "--search-root", str(REPO), "apply",
                     "--target", target]
        base_cmd = [PYTHON, "-c", BASELINE_CODE, dsn]
        floor_cmd = [PYTHON, "-c", FLOOR_CODE, dsn, str(project / "schema" / "plans")]

        first = run_process(apply_cmd, cwd=project, env=env)
        if first.returncode != 0:
            print("the first apply (to reach head) failed:\n" + first.stdout + first.stderr)
            return 1
        # Warm-up (page cache, .pyc files), then interleave so both see the same noise.
        for cmd in (apply_cmd, base_cmd, floor_cmd):
            warm = run_process(cmd, cwd=project, env=env)
            if warm.returncode != 0:
                print(f"warm-up of {cmd[1:3]} failed:\n" + warm.stdout + warm.stderr)
                return 1
        if "up to date" not in (warm_out := run_process(apply_cmd, cwd=project, env=env)).stdout:
            print("note: apply output does not say 'up to date':\n" + warm_out.stdout)

        pyc_cmd = [*apply_cmd[:5], "--write-pyc", *apply_cmd[5:]]
        run_process(pyc_cmd, cwd=project, env=pyc_env)  # fills the prefix
        apply_runs, base_runs, pyc_runs, floor_runs = [], [], [], []
        for _ in range(reps):
            base_runs.append(run_process(base_cmd, cwd=project, env=env))
            apply_runs.append(run_process(apply_cmd, cwd=project, env=env))
            pyc_runs.append(run_process(pyc_cmd, cwd=project, env=pyc_env))
            floor_runs.append(run_process(floor_cmd, cwd=project, env=env))
        for run in apply_runs + base_runs + pyc_runs + floor_runs:
            if run.returncode != 0:
                print("a measured run failed:\n" + run.stdout + run.stderr)
                return 1

        importtime = run_process(
            [PYTHON, "-X", "importtime", *apply_cmd[1:]], cwd=project, env=env
        ).stderr

    wall_a = Stats([r.wall for r in apply_runs])
    wall_b = Stats([r.wall for r in base_runs])
    cpu_a = Stats([r.cpu for r in apply_runs])
    cpu_b = Stats([r.cpu for r in base_runs])
    rss_a = Stats([r.max_rss_kb / 1024 for r in apply_runs])
    rss_b = Stats([r.max_rss_kb / 1024 for r in base_runs])
    wall_pyc = Stats([r.wall for r in pyc_runs])
    print(f"apply no-op vs bare psycopg2 'select 1' process ({reps} interleaved runs each)")
    print_table("whole process", [
        ("apply wall", wall_a, "s"),
        ("baseline wall", wall_b, "s"),
        ("apply cpu (user+sys)", cpu_a, "s"),
        ("baseline cpu", cpu_b, "s"),
        ("apply peak RSS", rss_a, "MB"),
        ("baseline peak RSS", rss_b, "MB"),
    ])
    wall_floor = Stats([r.wall for r in floor_runs])
    rss_floor = Stats([r.max_rss_kb / 1024 for r in floor_runs])
    print_table("informational, not in the ratio", [
        ("apply wall, tasks.py+deploy/ .pyc cached (--write-pyc)", wall_pyc, "s"),
        ("floor wall: invoke+psycopg2+plans+describe, no SQLAlchemy", wall_floor, "s"),
        ("floor peak RSS", rss_floor, "MB"),
    ])
    print(f"  floor/baseline: wall {wall_floor.median / wall_b.median:.2f}, "
          f"RSS {rss_floor.median / rss_b.median:.2f}")
    wall_ratio = wall_a.median / wall_b.median
    rss_ratio = rss_a.median / rss_b.median
    print(f"\n  median wall ratio {wall_ratio:.2f} (limit {WALL_LIMIT:g}), "
          f"median RSS ratio {rss_ratio:.2f} (limit {RSS_LIMIT:g})")
    print_imports(importtime)
    # Two limits, one final line: the worse of the two ratios, each divided by its limit.
    print(target_line(
        f"apply at head vs bare psycopg2 process, worse of wall {wall_ratio:.2f}x/{WALL_LIMIT:g} "
        f"and peak RSS {rss_ratio:.2f}x/{RSS_LIMIT:g}",
        max(wall_ratio / WALL_LIMIT, rss_ratio / RSS_LIMIT),
        1,
    ))
    return 0


_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def print_imports(stderr: str, top: int = 10) -> None:
    """Top packages by cumulative import time in the apply process (-X importtime)."""
    entries = []  # (cumulative_us, self_us, depth, name)
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if match:
            self_us, cum_us, indent, name = match.groups()
            entries.append((int(cum_us), int(self_us), len(indent) // 2, name))
    if not entries:
        print("\n(no -X importtime output)")
        return
    total = sum(cum for cum, _, depth, _ in entries if depth == 0)
    stdlib = sys.stdlib_module_names
    # One row per top-level package: the entry that imported the package itself.
    packages = [(cum, name) for cum, _, _, name in entries if "." not in name]
    packages.sort(reverse=True)
    print(f"\nimports of the apply process: {len(entries)} modules, "
          f"{total / 1e6:.2f}s total under -X importtime (inflated by the tracing)")
    print(f"  top {top} packages by cumulative import time (nested packages count in both):")
    for cum, name in packages[:top]:
        kind = "stdlib" if name in stdlib else ""
        print(f"    {cum / 1e3:8.1f} ms  {name} {kind}")
    names = {name.split(".")[0] for *_, name in entries}
    candidates = ("sqlalchemy", "migra", "schemainspect", "sqlbag", "pglast", "testcontainers",
                  "docker", "pkg_resources", "squawk")
    heavy = [n for n in candidates if n in names]
    print(f"  heavy libraries loaded: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    sys.exit(main())
