"""Scratch providers: local (initdb as an unprivileged user), docker (testcontainers), url."""

from __future__ import annotations

import os
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
