"""The package installs into a fresh virtualenv and migra runs there (setuptools pin)."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from tests.conftest import REPO


def test_fresh_virtualenv_can_run_migra_and_the_engine(tmp_path: Path):
    # schemainspect imports pkg_resources without declaring setuptools; setuptools >= 82
    # removed it. Without our `setuptools<82` pin a fresh venv cannot even run `migra --help`.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    migra = subprocess.run([str(env_dir / "bin" / "migra"), "--help"], capture_output=True,
                           text=True, timeout=60)
    assert migra.returncode == 0, migra.stderr
    versions = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, deploy.planner, deploy.applier, "
         "deploy.hazards; print(m.version('setuptools'), m.version('sqlalchemy'))"],
        capture_output=True, text=True, timeout=60,
        cwd=tmp_path,  # the installed copy, not this checkout's (sub)packages
    )
    assert versions.returncode == 0, versions.stderr
    setuptools_version, sqlalchemy_version = versions.stdout.split()
    assert int(setuptools_version.split(".")[0]) < 82
    assert sqlalchemy_version.startswith("2.")
    # Only the engine is distributed: an application's `schema` package must come from its
    # project root, never from site-packages.
    leaked = subprocess.run([str(python), "-c", "import schema"], capture_output=True,
                            cwd=tmp_path, timeout=60)
    assert leaked.returncode != 0


def test_the_running_interpreter_is_supported():
    assert sys.version_info >= (3, 11)
