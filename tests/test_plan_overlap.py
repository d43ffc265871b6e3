"""`plan` does independent work at once (deploy/planner.py): the scratch server starts while
the models import, the reverse is diffed and proven alongside the forward proof. These tests
prove that the overlap changes no answer: the same errors, the same notes, no server left."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

from deploy import reverse, urls
from deploy.errors import DeployError
from deploy.fingerprint import NOTHING_EXCLUDED
from deploy.scratch import open_scratch
from tests.conftest import POSTGRES_MAJOR, REPO, run_invoke

BROKEN_MODELS = (
    "import time\n"
    "time.sleep(1.5)  # long enough for the scratch server started meanwhile to be up\n"
    "raise RuntimeError('models are broken')\n"
)


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (a scratch cluster's directory)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        if text in line:
            found.append(line)
    return found


def _scratch_parent(tmp_path: Path) -> Path:
    """A DEPLOY_SCRATCH_DIR the server's user (`postgres` when run as root) can enter."""
    folder = Path(tempfile.mkdtemp(prefix="overlap-", dir="/tmp"))
    folder.chmod(0o777)
    return folder


def _break_models(project: Path) -> None:
    models = project / "schema" / "models.py"
    models.write_text(models.read_text() + BROKEN_MODELS)


def test_a_models_import_error_is_one_paragraph_and_leaves_no_server(
        empty_project: Path, tmp_path: Path) -> None:
    """With a cold cache the server starts while the models import; when the import fails,
    the error is the same one paragraph as before, and the server started meanwhile is
    stopped and its directory deleted."""
    _break_models(empty_project)
    scratch_parent = _scratch_parent(tmp_path)
    env = {**os.environ, "NO_COLOR": "1", "DEPLOY_SCRATCH_DIR": str(scratch_parent)}
    running = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "plan", "--name", "x",
         "--scratch", "local"],
        cwd=empty_project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: set[str] = set()
    while running.poll() is None:  # the server's directory appears while the models import
        seen.update(p.name for p in scratch_parent.iterdir())
        time.sleep(0.05)
    out = running.communicate()[0]
    assert running.returncode == 1, out
    assert "Could not import" in out and "RuntimeError: models are broken" in out
    assert "Traceback" not in out
    assert any(name.startswith("deploy-pg") for name in seen), "no early start happened"
    assert list(scratch_parent.iterdir()) == []
    assert _processes_mentioning(str(scratch_parent)) == []


def test_the_models_error_comes_first_when_the_server_cannot_start_either(
        empty_project: Path, tmp_path: Path) -> None:
    """Before the overlap the models loaded first, so their error was the one shown; the
    server's own error still shows when the models are fine."""
    missing = tmp_path / "no-such-dir"
    env = {"DEPLOY_SCRATCH_DIR": str(missing)}
    # --scratch local: DEPLOY_SCRATCH_DIR is the local provider's (CI has a Docker daemon,
    # where `auto` would pick docker).
    healthy = run_invoke(empty_project, "plan", "--name", "x", "--scratch", "local", env=env)
    assert healthy.returncode == 1
    assert "The local scratch server cannot be created in" in healthy.stdout + healthy.stderr
    assert "Traceback" not in healthy.stdout + healthy.stderr

    _break_models(empty_project)
    broken = run_invoke(empty_project, "plan", "--name", "x", "--scratch", "local", env=env)
    out = broken.stdout + broken.stderr
    assert broken.returncode == 1
    assert "Could not import" in out and "scratch server cannot be created" not in out
    assert "Traceback" not in out


def test_a_way_back_the_differ_cannot_express_is_a_deploy_error() -> None:
    """diff_back (run alongside the forward proof) raises the DeployError that files_for
    turns into the "No reverse was written" note, as generate did."""
    with open_scratch("local", POSTGRES_MAJOR) as server:
        to_url = server.create_database("to")
        from_url = server.create_database("from")
        for url, base_type in ((to_url, "bigint"), (from_url, "integer")):
            conn = psycopg2.connect(**urls.psycopg2_dsn(url))
            try:
                with conn, conn.cursor() as cur:
                    cur.execute(f"CREATE DOMAIN amount AS {base_type}")
            finally:
                conn.close()
        with pytest.raises(DeployError) as caught:
            reverse.diff_back(server, "to", from_url, NOTHING_EXCLUDED)
        assert caught.value.message.startswith("The differ cannot express the way back")

        with pytest.raises(DeployError) as same:
            reverse.diff_back(server, "from", from_url, NOTHING_EXCLUDED)
        assert same.value.message == "The differ found nothing to reverse."


def test_check_starts_the_server_during_classification_and_reports_as_before(
        project: Path, tmp_path: Path) -> None:
    """`check` with a cold cache starts its server while it classifies hazards; the models'
    import error is still a finding (not the end of the check), and no server is left."""
    _break_models(project)
    scratch_parent = _scratch_parent(tmp_path)
    done = run_invoke(project, "check", "--scratch", "local",
                      env={"DEPLOY_SCRATCH_DIR": str(scratch_parent)})
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "RuntimeError: models are broken" in out, out
    assert "Traceback" not in out
    assert list(scratch_parent.iterdir()) == []
    assert _processes_mentioning(str(scratch_parent)) == []
