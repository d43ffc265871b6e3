"""Shared fixtures: one real local PostgreSQL per test session, and throwaway project copies."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from deploy import urls
from deploy.scratch import LocalServer

REPO = Path(__file__).resolve().parent.parent
POSTGRES_MAJOR = 15
ALL_MAJORS = (14, 15, 16, 17, 18)


def matrix_majors() -> list[int]:
    """Majors the version matrix runs on: $DEPLOY_TEST_MAJORS ("14,16"), else those installed.

    A major named in the variable but not installed fails its tests (CI must not skip them).
    """
    from deploy.scratch import find_local_binaries

    listed = os.environ.get("DEPLOY_TEST_MAJORS", "").replace(",", " ").split()
    if listed:
        return [int(m) for m in listed]
    return [m for m in ALL_MAJORS if find_local_binaries(m) is not None]


class Databases:
    """Databases on the session's local server, handed out as plain postgresql:// URLs."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self._count = 0

    def new(self, name: str = "db") -> str:
        """Create an empty database and return its URL (unix socket, no password)."""
        self._count += 1
        url = self.server.create_database(f"{name}_{self._count}")
        return urls.sqlalchemy_url(url).replace("postgresql+psycopg2://", "postgresql://", 1)

    def execute(self, url: str, sql: str) -> None:
        """Run SQL on a database in one transaction."""
        conn = psycopg2.connect(**urls.psycopg2_dsn(url))
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def query(self, url: str, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of a query."""
        conn = psycopg2.connect(**urls.psycopg2_dsn(url))
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()


@pytest.fixture(autouse=True)
def private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test gets an empty plan/check cache (deploy.cache), never the user's own."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("SCHEMA_DEPLOY_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def pg() -> Iterator[Databases]:
    """A real PostgreSQL 15 started for the test session (local binaries, no Docker)."""
    server = LocalServer(POSTGRES_MAJOR)
    try:
        yield Databases(server)
    finally:
        server.close()


@pytest.fixture(scope="session", params=matrix_majors(), ids=lambda m: f"pg{m}")
def pg_major(request: pytest.FixtureRequest) -> Iterator[Databases]:
    """A real server of each major in the matrix (15 is the session's `pg`)."""
    if request.param == POSTGRES_MAJOR:
        yield request.getfixturevalue("pg")
        return
    server = LocalServer(request.param)
    try:
        yield Databases(server)
    finally:
        server.close()


def copy_project(target: Path, with_plans: bool = True) -> Path:
    """Copy pyproject.toml (postgres = the suite's major) and schema/ into `target`.

    Optionally without plans and snapshot.
    """
    target.mkdir(parents=True, exist_ok=True)
    # The copy plans on the suite's own major (the repository's may be another: Railway's
    # default); tests/test_majors.py runs the project on every major.
    config = (REPO / "pyproject.toml").read_text()
    (target / "pyproject.toml").write_text(
        re.sub(r"(?m)^postgres = \d+", f"postgres = {POSTGRES_MAJOR}", config))
    shutil.copytree(REPO / "schema", target / "schema",
                    ignore=shutil.ignore_patterns("__pycache__"))
    if not with_plans:
        shutil.rmtree(target / "schema" / "plans")
        (target / "schema" / "plans").mkdir()
        for name in ("schema.sql", "schema.json"):
            (target / "schema" / name).unlink(missing_ok=True)
    return target


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the Cognition Curator project with its committed plans."""
    return copy_project(tmp_path / "project")


@pytest.fixture
def empty_project(tmp_path: Path) -> Path:
    """A copy of the project with no plans yet (the very first `plan` starts from empty)."""
    return copy_project(tmp_path / "project", with_plans=False)


def run_invoke(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `invoke ARGS` as a user would, in `cwd`, with this repo's tasks.py."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    for variable in ("DATABASE_URL", "DATABASE_UNPOOLED_URL"):  # only what the test sets
        if env is None or variable not in env:
            full_env.pop(variable, None)
    command = [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args]
    return subprocess.run(
        command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


class PasswordServer:
    """A PostgreSQL on 127.0.0.1 that demands a password (scram), for auth-failure tests."""

    user = "deployer"
    password = "correct-horse-battery"

    def __init__(self, port: int) -> None:
        self.port = port

    def url(self, dbname: str = "postgres", password: str | None = None) -> str:
        """postgresql:// URL with the given (default: right) password."""
        secret = self.password if password is None else password
        return f"postgresql://{self.user}:{secret}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """A new, empty database on this server; returns its URL (right password)."""
        conn = psycopg2.connect(self.url())
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)


@pytest.fixture(scope="session")
def password_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PasswordServer]:
    """A second real cluster with password authentication over TCP (a free port)."""
    import pwd
    import tempfile

    from deploy.scratch import find_local_binaries

    bindir = find_local_binaries(POSTGRES_MAJOR)
    assert bindir is not None, "PostgreSQL server binaries are required for the tests"
    root = Path(tempfile.mkdtemp(prefix="deploy-pwtest-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    import socket

    # A free port, not a fixed one: several checkouts may run their suites side by side.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = PasswordServer(port)
    pwfile = root / "pw"
    pwfile.write_text(server.password + "\n")
    if prefix:
        os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    data = root / "data"
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", server.user,
                    "--auth=scram-sha-256", f"--pwfile={pwfile}", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
                    "-o", f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "-w", "start"], check=True, capture_output=True)
    try:
        yield server
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
