"""`invoke status`, the /healthz and /status endpoint, and railway.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import REPO, Databases, run_invoke
from test_apply import FIRST, head, live_fingerprint

from deploy.applier import apply_plans
from deploy.config import load_config
from deploy.health import make_server

PORTS = iter(range(55660, 55700))


TOKEN = "a-long-random-status-token"


def get(url: str, token: str | None = None) -> tuple[int, str]:
    """(HTTP status, body) of a GET, with `Authorization: Bearer <token>` when given."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextmanager
def health_server(project: Path, target: str, token: str | None = TOKEN) -> Iterator[str]:
    """Serve /healthz and /status in a thread (cache 0.1 s); yield the base URL."""
    for port in PORTS:
        try:
            server = make_server(load_config(project), port, target=target, host="127.0.0.1",
                                 ttl=0.1, quiet=True, token=token or "")
            break
        except OSError:
            continue
    else:
        raise AssertionError("no free port in 55660-55699")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- invoke status --------------------------------------------------------------------------


def test_status_exit_codes_follow_the_state(pg: Databases, project: Path) -> None:
    url = pg.new("status")
    pending = run_invoke(project, "status", "--format", "json", "--target", url)
    assert pending.returncode == 2, pending.stderr
    document = json.loads(pending.stdout)
    assert document["state"] == "pending" and document["pending"] == [FIRST]
    assert document["matches"] == "(empty schema)" and document["history"] == []

    apply_plans(load_config(project), target=url)
    at_head = run_invoke(project, "status", "--format", "json", "--target", url)
    assert at_head.returncode == 0, at_head.stderr
    document = json.loads(at_head.stdout)
    assert document["state"] == "head" and document["matches"] == FIRST
    assert document["live_fingerprint"] == document["head"] == head(project)
    assert [(r["plan"], r["status"]) for r in document["history"]] == [(FIRST, "applied")]

    pg.execute(url, "ALTER TABLE public.decks ADD COLUMN hotfix text")
    drift = run_invoke(project, "status", "--target", url)
    assert drift.returncode == 4
    assert "DRIFT" in drift.stdout and "+ column public.decks.hotfix: type=text" in drift.stdout
    assert "invoke plan --target" in drift.stdout


def test_status_is_read_only(pg: Databases, project: Path) -> None:
    url = pg.new("status_ro")
    before = live_fingerprint(project, url)
    assert run_invoke(project, "status", "--target", url).returncode == 2
    assert live_fingerprint(project, url) == before
    assert pg.query(url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'schema_deploy'") == [
        (0,)
    ]


# --- /healthz and /status ---------------------------------------------------------------------


def test_healthz_is_200_only_at_head_and_status_matches_the_cli(
    pg: Databases, project: Path
) -> None:
    url = pg.new("health")
    with health_server(project, url) as base:
        code, body = get(base + "/healthz")
        assert code == 503 and "1 plan(s) pending" in body
        code, body = get(base + "/status")
        assert code == 200 and json.loads(body)["state"] == "pending"

        apply_plans(load_config(project), target=url)
        time.sleep(0.2)  # past the cache
        code, body = get(base + "/healthz")
        assert (code, body) == (200, "ok: schema at head\n")
        code, body = get(base + "/status", TOKEN)
        served = json.loads(body)
        cli = json.loads(run_invoke(project, "status", "--format", "json", "--target", url).stdout)
        assert served == cli

        pg.execute(url, "ALTER TABLE public.decks ADD COLUMN hotfix text")
        time.sleep(0.2)
        code, body = get(base + "/healthz")
        assert code == 503 and "drift" in body
        assert get(base + "/nothing-here")[0] == 404


def test_status_without_the_token_is_minimal(pg: Databases, project: Path) -> None:
    url = pg.new("status_token")
    apply_plans(load_config(project), target=url)  # a history row with user and host
    with health_server(project, url) as base:
        code, body = get(base + "/status")
        served = json.loads(body)
        assert code == 200
        assert set(served) == {"version", "command", "state", "exit_code", "head", "full_document"}
        assert served["state"] == "head" and served["head"] == head(project)
        for leak in ("history", "db_user", "client_host", "postgres@", "matches", FIRST):
            assert leak not in body
        code, body = get(base + "/status", "not-the-token")
        assert code == 401 and "history" not in body
        code, body = get(base + "/status", TOKEN)
        assert code == 200 and json.loads(body)["history"][0]["plan"] == FIRST
        assert get(base + "/healthz") == (200, "ok: schema at head\n")
    with health_server(project, url, token=None) as base:  # no token configured: never full
        code, body = get(base + "/status")
        assert code == 200 and "history" not in json.loads(body)
        assert get(base + "/status", "anything")[0] == 401


def test_healthz_is_503_when_the_database_is_unreachable_and_hides_the_password(
    project: Path,
) -> None:
    secret = "Hidden-Pa55word"
    with health_server(project, f"postgresql://app:{secret}@127.0.0.1:55659/app") as base:
        started = time.monotonic()
        code, body = get(base + "/healthz")
        assert code == 503 and "cannot be read" in body and "127.0.0.1" not in body
        assert time.monotonic() - started < 8  # short connection wait
        code, body = get(base + "/healthz", TOKEN)
        assert code == 503 and "Cannot connect" in body and secret not in body
        code, body = get(base + "/status", TOKEN)
        assert code == 503 and json.loads(body)["status"] == "error"
        assert secret not in body
        code, body = get(base + "/status")
        assert code == 503 and json.loads(body)["state"] == "error"
        assert "error" not in json.loads(body) and "127.0.0.1" not in body


def test_invoke_serve_answers_on_port_from_the_environment(pg: Databases, project: Path) -> None:
    url = pg.new("serve")
    apply_plans(load_config(project), target=url)
    port = next(PORTS)
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": url, "NO_COLOR": "1",
           "DEPLOY_STATUS_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "serve"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                code, _ = get(f"http://127.0.0.1:{port}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "invoke serve did not start listening"
                time.sleep(0.1)
        assert code == 200
        assert "history" in json.loads(get(f"http://127.0.0.1:{port}/status", TOKEN)[1])
        assert "history" not in json.loads(get(f"http://127.0.0.1:{port}/status")[1])
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert f"on port {port}" in err and "schema status: head" in err


# --- railway.json ----------------------------------------------------------------------------


def test_railway_json_runs_apply_before_deploy_and_health_checks_the_schema() -> None:
    config = json.loads((REPO / "railway.json").read_text())
    assert config["$schema"] == "https://railway.com/railway.schema.json"
    assert config["build"]["builder"] == "RAILPACK"
    deploy = config["deploy"]
    # Railway runs exactly one pre-deploy command (a list of two fails).
    command = deploy["preDeployCommand"]
    commands = command if isinstance(command, list) else [command]
    assert len(commands) == 1 and commands[0].startswith("invoke apply")
    assert deploy["startCommand"] == "invoke serve"
    assert deploy["healthcheckPath"] == "/healthz"
    assert isinstance(deploy["healthcheckTimeout"], int)


def _task_names() -> str:
    done = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "--list"],
                          capture_output=True, text=True, check=True)
    return done.stdout


@pytest.mark.parametrize("task", ["apply", "serve"])
def test_railway_commands_exist(task: str) -> None:
    assert f"  {task} " in _task_names()
