"""`invoke apply` on a database at head with 1000 (and 2000) generated tables vs `pg_dump -s`.

An apply at head reads the whole schema once (to know it is at head) and changes nothing;
`pg_dump -s` of the same database is the natural floor of "read the whole schema from
the catalogs in a fresh process". Both run as whole processes, interleaved, on the same
database; the figure is the ratio of the medians.

The database is brought to head by `invoke apply` itself: the generated project has one
plan per 100 tables (the synthetic tables of _common.table_ddl), so the history table
holds one row per plan, as a real project's would.

    .venv/bin/python bench/apply_scale.py [--quick] [--tables N ...]

--quick: 1000 tables, 5 runs each; default: 1000 and 2000 tables, 9 runs each.
"""

from __future__ import annotations

import os
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
    table_ddl,
    target_line,
)

LIMIT = 1.5
PER_PLAN = 100  # tables per generated plan file

PYPROJECT = f"""\
[project]
name = "apply-scale-bench"
version = "0"

[tool.deploy]
metadata = "unused_models:metadata"
plans = "plans"
postgres = {POSTGRES_MAJOR}
exclude = ["alembic_version"]  # as the app template has it: excluded tables cost a key split
"""


def write_project(project: Path, conn, tables: int) -> None:  # noqa: ANN001
    """Plans of PER_PLAN tables each, with fingerprints measured on `conn` (a build database
    the tables are created in as we go); the target database gets them from `invoke apply`."""
    from deploy.config import load_config
    from deploy.fingerprint import describe, fingerprint
    from deploy.plans import render_plan

    plans = project / "plans"
    plans.mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    exclusions = load_config(project).exclusions
    before = fingerprint(describe(conn, exclusions))
    for number, start in enumerate(range(0, tables, PER_PLAN)):
        body = "".join(table_ddl(i) for i in range(start, min(tables, start + PER_PLAN)))
        with conn, conn.cursor() as cur:
            cur.execute(body)
        after = fingerprint(describe(conn, exclusions))
        text = render_plan(f"tables from {start}", before, after, POSTGRES_MAJOR, [], body)
        (plans / f"20260101T{number:06d}Z_tables_{start:04d}.sql").write_text(text)
        before = after


def measure(tmp: Path, server, tables: int, reps: int, env: dict[str, str]) -> float:  # noqa: ANN001
    """Median wall of apply-at-head over median wall of `pg_dump -s`, at `tables` tables."""
    import psycopg2

    from deploy import urls

    build_url = server.create_database(f"build{tables}")
    target_url = server.create_database(f"target{tables}")
    project = tmp / f"project{tables}"
    conn = psycopg2.connect(**urls.psycopg2_dsn(build_url))
    try:
        write_project(project, conn, tables)
    finally:
        conn.close()
    target = urls.parse_url(target_url)
    apply_cmd = [PYTHON, "-m", "invoke", "--search-root", str(REPO), "apply", "--target", target]
    dump_cmd = [str(server_bindir() / "pg_dump"), "-s", "-d", target]

    first = run_process(apply_cmd, cwd=project, env=env)
    if first.returncode != 0:
        raise SystemExit("the apply that brings the database to head failed:\n"
                         + first.stdout + first.stderr)
    for cmd in (apply_cmd, dump_cmd):  # warm-up: page cache, bytecode
        warm = run_process(cmd, cwd=project, env=env)
        if warm.returncode != 0:
            raise SystemExit(f"warm-up of {cmd[0]} failed:\n{warm.stdout}{warm.stderr}")
    if "up to date" not in warm.stdout + run_process(apply_cmd, cwd=project, env=env).stdout:
        raise SystemExit("apply did not find the database up to date")

    applies, dumps = [], []
    for _ in range(reps):
        dumps.append(run_process(dump_cmd, cwd=project, env=env))
        applies.append(run_process(apply_cmd, cwd=project, env=env))
    for run in applies + dumps:
        if run.returncode != 0:
            raise SystemExit("a measured run failed:\n" + run.stdout + run.stderr)
    wall_a, wall_d = Stats([r.wall for r in applies]), Stats([r.wall for r in dumps])
    print(f"\n{tables} tables: `invoke apply` at head vs `pg_dump -s` ({reps} interleaved runs "
          f"each, {len(list((project / 'plans').glob('*.sql')))} plan files)")
    print_table("whole process", [
        ("apply wall", wall_a, "s"),
        ("pg_dump -s wall", wall_d, "s"),
        ("apply cpu (user+sys)", Stats([r.cpu for r in applies]), "s"),
        ("pg_dump cpu", Stats([r.cpu for r in dumps]), "s"),
        ("apply peak RSS", Stats([r.max_rss_kb / 1024 for r in applies]), "MB"),
        ("pg_dump peak RSS", Stats([r.max_rss_kb / 1024 for r in dumps]), "MB"),
    ])
    ratio = wall_a.median / wall_d.median
    print(f"  median wall ratio {ratio:.2f} (limit {LIMIT:g})")
    return ratio


def server_bindir() -> Path:
    """The PostgreSQL binaries the scratch server runs (pg_dump of the same major)."""
    from deploy.scratch import find_local_binaries

    bindir = find_local_binaries(POSTGRES_MAJOR)
    if bindir is None:
        raise SystemExit(f"no PostgreSQL {POSTGRES_MAJOR} binaries found")
    return bindir


def main() -> int:
    quick = quick_flag()
    sizes = [1000] if quick else [1000, 2000]
    if "--tables" in sys.argv:
        sizes = [int(a) for a in sys.argv[sys.argv.index("--tables") + 1:] if a.isdigit()]
    reps = 5 if quick else 9
    from deploy.scratch import open_scratch

    with tempfile.TemporaryDirectory(prefix="bench-apply-scale-") as tmp_name, open_scratch(
        "local", POSTGRES_MAJOR
    ) as server:
        tmp = Path(tmp_name)
        # Bytecode cached into a private prefix (a deployed image that ran compileall, or any
        # second run on a developer's machine); nothing is written into the repository.
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "PYTHONDONTWRITEBYTECODE")}
        env.update(NO_COLOR="1", PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
        ratios = {tables: measure(tmp, server, tables, reps, env) for tables in sizes}
    print()
    for tables, ratio in ratios.items():
        print(f"  {tables} tables: apply at head / pg_dump -s = {ratio:.2f} (limit {LIMIT:g})")
    worst = max(ratios, key=lambda tables: ratios[tables])
    print(target_line(f"apply at head vs pg_dump -s, worst of {', '.join(map(str, ratios))} "
                      f"tables ({worst})", ratios[worst], LIMIT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
