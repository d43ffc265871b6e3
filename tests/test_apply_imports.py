"""`invoke apply` at head parses nothing, so it imports no SQL parser (issue 10).

An apply at head is the Railway pre-deploy step of every deploy: its time is process start
plus imports plus one catalog read. pglast, the hazard rules, SQLAlchemy and migra are only
needed when a plan runs (or by plan/check), so the at-head path must not pay for them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, Databases, run_invoke

# Modules an at-head apply has no use for (each with its submodules).
HEAVY = ("pglast", "sqlalchemy", "migra", "schemainspect")
# The hazard vocabulary (Hazard/Approval records read from plan headers) is plain data; the
# rules that classify statements are not needed at head.
HAZARD_VOCABULARY = {"deploy.hazards", "deploy.hazards.model"}


def imported_modules(
    project: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `invoke ARGS` with -X importtime; the result and the names of modules imported."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "DATABASE_UNPOOLED_URL")}
    env["NO_COLOR"] = "1"
    command = [sys.executable, "-X", "importtime", "-m", "invoke", "--search-root", str(REPO),
               *args]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                            timeout=300)
    names = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
             if line.startswith("import time:") and line.count("|") == 2}
    return result, names


def test_apply_at_head_imports_no_parser(pg: Databases, project: Path) -> None:
    url = pg.new()
    first = run_invoke(project, "apply", "--target", url)
    assert first.returncode == 0, first.stdout + first.stderr

    result, names = imported_modules(project, "apply", "--target", url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "is up to date" in result.stdout, result.stdout
    assert "deploy.applier" in names  # the measurement saw the apply modules at all
    heavy = sorted(n for n in names if n.split(".")[0] in HEAVY)
    assert heavy == []
    rules = sorted(n for n in names
                   if n.startswith("deploy.hazards") and n not in HAZARD_VOCABULARY)
    assert rules == []


def test_lazy_module_imports_on_first_read_and_rebinds() -> None:
    from deploy.lazy import lazy_module

    namespace: dict[str, object] = {}
    namespace["json_stand_in"] = lazy_module("json", namespace, "json_stand_in")
    stand_in = namespace["json_stand_in"]
    assert stand_in.dumps([1]) == "[1]"  # type: ignore[attr-defined]
    import json

    assert namespace["json_stand_in"] is json  # later reads are plain global lookups


def test_hazards_names_resolve_on_first_use() -> None:
    from deploy import hazards
    from deploy.hazards.core import classify

    assert hazards.classify is classify
    with pytest.raises(AttributeError):
        hazards.no_such_name  # noqa: B018
