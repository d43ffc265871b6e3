"""Scratch providers: local (initdb as an unprivileged user), docker (testcontainers), url."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg2
import pytest

from deploy import desired, urls
from deploy.config import load_config
from deploy.errors import DeployError
from deploy.fingerprint import describe, fingerprint
from deploy.scratch import docker_available, open_scratch
from tests.conftest import REPO, run_invoke

# CI provides a Docker-compatible daemon (podman) and sets this, so docker tests never skip there.
REQUIRE_DOCKER = os.environ.get("DEPLOY_REQUIRE_DOCKER") == "1"


def _needs_docker() -> None:
    if docker_available():
        return
    if REQUIRE_DOCKER:
        pytest.fail("DEPLOY_REQUIRE_DOCKER=1 but no Docker-compatible daemon answers (DOCKER_HOST)")
    pytest.skip("no Docker-compatible daemon answers here; CI runs this through podman")


def _desired_fingerprint(kind: str, **kwargs: object) -> str:
    config = load_config(REPO)
    schema = desired.load_desired(config)
    with open_scratch(kind, 15, **kwargs) as server:  # type: ignore[arg-type]
        url = server.create_database("desired")
        desired.build(schema, url)
        conn = psycopg2.connect(**urls.psycopg2_dsn(url))
        try:
            return fingerprint(describe(conn))
        finally:
            conn.close()


def test_local_server_lives_only_inside_the_block():
    with open_scratch("local", 15) as server:
        assert server.kind == "local" and server.major == 15
        url = server.create_database("a")
        copy = server.create_database("b", template="a")
        conn = psycopg2.connect(**urls.psycopg2_dsn(copy))
        conn.close()
        socket_dir = Path(str(url.query["host"]))
        assert socket_dir.is_dir()
    assert not socket_dir.exists()


def test_docker_and_local_build_the_same_fingerprint():
    _needs_docker()
    assert _desired_fingerprint("docker") == _desired_fingerprint("local")


def test_plan_check_runs_on_the_docker_provider(project):
    _needs_docker()
    result = run_invoke(project, "plan", "--check", "--scratch", "docker")
    assert result.returncode == 0, result.stderr
    assert "(docker)" in result.stderr


def test_docker_without_a_daemon_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(DeployError) as error, open_scratch("docker", 15):
        pass
    assert "Docker-compatible daemon" in error.value.message


def test_auto_falls_back_to_local_without_a_daemon(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with open_scratch("auto", 15) as server:
        assert server.kind == "local"


def test_url_provider_uses_an_existing_server_and_cleans_up(password_pg):
    admin = password_pg.url()
    with open_scratch("url", 15, url=admin) as server:
        server.create_database("x")
        names = {row[0] for row in _query(admin, "select datname from pg_database")}
        assert any(n.endswith("_x") for n in names)
    names = {row[0] for row in _query(admin, "select datname from pg_database")}
    assert not any(n.startswith("scratch_") for n in names)


def test_url_provider_refuses_another_major_version(password_pg):
    with pytest.raises(DeployError) as error, open_scratch("url", 16, url=password_pg.url()):
        pass
    assert "runs PostgreSQL 15, but PostgreSQL 16 is required" in error.value.message
    assert password_pg.password not in error.value.message


def test_unknown_provider_is_a_clear_error():
    with (
        pytest.raises(DeployError, match="Unknown scratch provider 'podman'"),
        open_scratch("podman", 15),
    ):
        pass


def _query(url: str, sql: str) -> list[tuple]:
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_local_server_lives_where_deploy_scratch_dir_says(monkeypatch):
    """DEPLOY_SCRATCH_DIR picks the parent of the local cluster (the default is /dev/shm when
    it is a tmpfs with room: file creation on a busy ext4 cost most of a big build)."""
    # Not under pytest's tmp_path: as root the cluster runs as `postgres`, which cannot
    # enter /tmp/pytest-of-root.
    parent = Path(tempfile.mkdtemp(prefix="scratch-here-", dir="/tmp"))
    try:
        os.chmod(parent, 0o777)
        monkeypatch.setenv("DEPLOY_SCRATCH_DIR", str(parent))
        with open_scratch("local", 15) as server:
            url = server.create_database("a")
            socket_dir = Path(str(url.query["host"]))
            assert socket_dir.parent == parent
            assert (socket_dir / "data" / "PG_VERSION").is_file()
        assert list(parent.iterdir()) == []
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_default_scratch_parent_is_a_roomy_tmpfs_or_the_temp_dir(monkeypatch):
    from deploy import scratch

    monkeypatch.delenv("DEPLOY_SCRATCH_DIR", raising=False)
    chosen = scratch.scratch_parent()
    if chosen is not None:
        assert chosen == "/dev/shm" and scratch._is_tmpfs(chosen)
        stats = os.statvfs(chosen)
        assert stats.f_bavail * stats.f_frsize >= scratch._TMPFS_MIN_FREE
    monkeypatch.setattr(scratch, "_TMPFS_MIN_FREE", 1 << 62)  # no tmpfs has that much room
    assert scratch.scratch_parent() is None
    assert not scratch._is_tmpfs("/")


@pytest.mark.parametrize("where", ["missing", "unreachable"])
def test_a_scratch_dir_the_server_cannot_use_is_a_clear_error(tmp_path, monkeypatch, where):
    # tmp_path: root-only (/tmp/pytest-of-root is 0700), so the postgres user cannot enter it.
    parent = tmp_path / "nope" if where == "missing" else tmp_path
    if where == "unreachable" and os.geteuid() != 0:
        pytest.skip("only root runs the cluster as another user")
    monkeypatch.setenv("DEPLOY_SCRATCH_DIR", str(parent))
    with pytest.raises(DeployError) as caught, open_scratch("local", 15):
        pass
    assert "DEPLOY_SCRATCH_DIR" in caught.value.message
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("deploy-pg")]
