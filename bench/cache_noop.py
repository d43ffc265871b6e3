"""`invoke plan` / `invoke check` with nothing changed and a warm cache, as whole processes.

Two comparisons, each against a baseline measured in the same run:

1. App schema (the Cognition Curator project): `invoke plan --check`, nothing changed, warm
   cache, vs `alembic check` on the same models against a live database at the same schema
   (an Alembic environment with no revisions: it compares the models with the database).
   Target: median ratio <= 1.0.
2. N generated tables (1000; 200 with --quick): `invoke plan --check` and `invoke check`
   with nothing changed and a warm cache vs the cold first `invoke plan` of the same project
   (empty cache, no plans). Target: <= 0.3 each.

    .venv/bin/python bench/cache_noop.py [--quick] [--tables N]

The machine's cores are shared (other suites run at the same time): numbers are noisy, and
the cold first plan is measured once at scale (it takes a minute at 1000 tables).
"""

from __future__ import annotations

import os
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

APP_LIMIT = 1.0
SCALE_LIMIT = 0.3
MODULE = "bench_generated_models"

ALEMBIC_INI = """\
[alembic]
script_location = {here}/alembic
"""

ALEMBIC_ENV = """\
import sys
from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

sys.path.insert(0, {project!r})
from schema import metadata  # noqa: E402

engine = create_engine({url!r}, poolclass=NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
"""

ALEMBIC_MAKO = '"""${message}"""\nrevision = ${repr(up_revision)}\n'

SCALE_PYPROJECT = f"""\
[project]
name = "cache-noop-bench"
version = "0"

[tool.deploy]
metadata = "{MODULE}:metadata"
sql = "sql"
plans = "plans"
snapshot = "schema.sql"
postgres = 15
scratch = "local"
"""


def invoke(*args: str) -> list[str]:
    """The command line a user runs, with this repository's tasks.py."""
    return [PYTHON, "-m", "invoke", "--search-root", str(REPO), *args]


def run_ok(command: list[str], cwd: Path, env: dict[str, str], allowed=(0,)):  # noqa: ANN001, ANN201
    """run_process, stopping the benchmark when the command fails."""
    result = run_process(command, cwd=cwd, env=env)
    if result.returncode not in allowed:
        raise SystemExit(f"{' '.join(command[-3:])} exited {result.returncode}:\n"
                         f"{result.stdout}\n{result.stderr}")
    return result


def app_schema(tmp: Path, env: dict[str, str], reps: int) -> float:
    """Warm `plan --check` on the app schema vs `alembic check`; returns the median ratio."""
    from deploy import urls
    from deploy.scratch import open_scratch
    from tests.conftest import copy_project

    project = copy_project(tmp / "app")
    with open_scratch("local", 15) as server:
        url = server.create_database("live")
        live = urls.sqlalchemy_url(url).replace("postgresql+psycopg2://", "postgresql://", 1)
        run_ok(invoke("apply", "--target", live), project, env)
        # Alembic: an environment with no revisions, so `check` compares models and database.
        alembic_dir = tmp / "alembic_env"
        (alembic_dir / "alembic" / "versions").mkdir(parents=True)
        (alembic_dir / "alembic.ini").write_text(ALEMBIC_INI.format(here=alembic_dir))
        (alembic_dir / "alembic" / "env.py").write_text(
            ALEMBIC_ENV.format(project=str(project), url=urls.sqlalchemy_url(url)))
        (alembic_dir / "alembic" / "script.py.mako").write_text(ALEMBIC_MAKO)
        alembic_cmd = [str(Path(PYTHON).with_name("alembic")), "-c",
                       str(alembic_dir / "alembic.ini"), "check"]
        plan_cmd = invoke("plan", "--check")
        # Warm-up: fills the cache (one cold plan), page cache, .pyc of site-packages.
        run_ok(plan_cmd, project, env)
        # alembic exits 255 when it finds differences it would migrate (see the note below).
        alembic_first = run_ok(alembic_cmd, alembic_dir, env, allowed=(0, 255))
        ours, theirs = [], []
        for _ in range(reps):
            theirs.append(run_ok(alembic_cmd, alembic_dir, env, allowed=(0, 255)))
            ours.append(run_ok(plan_cmd, project, env))
    assert all("no scratch server needed" in r.stderr for r in ours), ours[0].stderr
    wall_ours, wall_alembic = Stats([r.wall for r in ours]), Stats([r.wall for r in theirs])
    print(f"app schema: `invoke plan --check`, nothing changed, warm cache vs `alembic check` "
          f"({reps} interleaved runs each)")
    print_table("whole process wall time", [
        ("invoke plan --check (warm)", wall_ours, "s"),
        ("alembic check", wall_alembic, "s"),
    ])
    print_table("peak RSS", [
        ("invoke plan --check (warm)", Stats([r.max_rss_kb / 1024 for r in ours]), "MB"),
        ("alembic check", Stats([r.max_rss_kb / 1024 for r in theirs]), "MB"),
    ])
    if alembic_first.returncode:
        last = (alembic_first.stdout + alembic_first.stderr).strip().splitlines()[-1:]
        print(f"  note: alembic check reports differences it would migrate: {last}")
    return wall_ours.median / wall_alembic.median


def at_scale(tmp: Path, env: dict[str, str], tables: int, reps: int) -> tuple[float, float]:
    """Warm no-op `plan --check` and `check` vs the cold first plan at `tables` tables."""
    project = tmp / "scale"
    (project / "plans").mkdir(parents=True)
    (project / "pyproject.toml").write_text(SCALE_PYPROJECT)
    (project / f"{MODULE}.py").write_text(models_module(tables))
    scale_env = {**env, "SCHEMA_DEPLOY_CACHE_DIR": str(tmp / "scale-cache")}
    cold = run_ok(invoke("plan", "--name", "initial"), project, scale_env)
    # The first check replays the new plan (its bytes are not proven yet) and fills the cache.
    cold_check = run_ok(invoke("check"), project, scale_env)
    plans, checks = [], []
    for _ in range(reps):
        plans.append(run_ok(invoke("plan", "--check"), project, scale_env))
        checks.append(run_ok(invoke("check"), project, scale_env))
    for run in plans + checks:
        assert "no scratch server needed" in run.stderr, run.stderr
    wall_plan, wall_check = Stats([r.wall for r in plans]), Stats([r.wall for r in checks])
    cold_s = Stats([cold.wall])
    print(f"\n{tables} tables: nothing changed, warm cache vs the cold first plan "
          f"({reps} runs each; the cold plan once)")
    print_table("whole process wall time", [
        ("invoke plan --check (warm)", wall_plan, "s"),
        ("invoke check (warm)", wall_check, "s"),
        ("invoke plan, first, cold cache", cold_s, "s"),
        ("invoke check, first after it", Stats([cold_check.wall]), "s"),
    ])
    print_table("peak RSS", [
        ("invoke plan --check (warm)", Stats([r.max_rss_kb / 1024 for r in plans]), "MB"),
        ("invoke check (warm)", Stats([r.max_rss_kb / 1024 for r in checks]), "MB"),
        ("invoke plan, first, cold cache", Stats([cold.max_rss_kb / 1024]), "MB"),
    ])
    return wall_plan.median / cold.wall, wall_check.median / cold.wall


def main() -> int:
    quick = quick_flag()
    tables = 200 if quick else 1000
    if "--tables" in sys.argv:
        tables = int(sys.argv[sys.argv.index("--tables") + 1])
    reps = 5 if quick else 9
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp_name:
        tmp = Path(tmp_name)
        # As on a developer's machine: bytecode is cached (for both tools alike; into a private
        # prefix, so nothing is written into the repository or site-packages).
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "PYTHONDONTWRITEBYTECODE")}
        env.update(NO_COLOR="1", SCHEMA_DEPLOY_CACHE_DIR=str(tmp / "cache"),
                   PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
        app_ratio = app_schema(tmp, env, reps)
        plan_ratio, check_ratio = at_scale(tmp, env, tables, max(3, reps // 3))
    print(f"\n  app schema: plan --check (warm) / alembic check = {app_ratio:.2f} "
          f"(limit {APP_LIMIT:g})")
    print(f"  {tables} tables: plan --check (warm) / first plan = {plan_ratio:.2f}, "
          f"check (warm) / first plan = {check_ratio:.2f} (limit {SCALE_LIMIT:g})")
    print(target_line(f"warm no-op plan/check at {tables} tables vs a cold first plan",
                      max(plan_ratio, check_ratio), SCALE_LIMIT))
    print(target_line("warm no-op plan on the app schema vs alembic check", app_ratio,
                      APP_LIMIT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
