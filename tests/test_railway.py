"""Railway as it is: a PgBouncer in front of DATABASE_URL, one pre-deploy command, alembic_version.

The pooler tests run a real PgBouncer (Debian's package) in transaction and session mode
in front of the session's PostgreSQL, as an unprivileged user on a free port.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, Databases, run_invoke

from deploy import urls
from deploy.railway import check_project

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Bouncer:
    """A PgBouncer in `mode` in front of the session server; hands out pooled URLs."""

    def __init__(self, pg: Databases, mode: str) -> None:
        self.mode = mode
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"deploy-pgbouncer-{mode}-"))
        socket_dir = pg.server.url("postgres").query["host"]
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={socket_dir} port=5432 user=postgres\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            "auth_type = any\n"
            f"pool_mode = {mode}\ndefault_pool_size = 4\n"
            "ignore_startup_parameters = extra_float_digits, options\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\npidfile = {self.dir / 'pgbouncer.pid'}\n"
        )
        prefix: list[str] = []
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            user = pwd.getpwnam("postgres")
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
            prefix = ["runuser", "-u", "postgres", "--"]
        self.process = subprocess.Popen(
            [*prefix, PGBOUNCER, str(self.dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    log = (self.dir / "pgbouncer.log")
                    raise RuntimeError(
                        "pgbouncer did not start: " + (log.read_text() if log.exists() else "")
                    ) from None
                time.sleep(0.1)

    def url(self, direct_url: str) -> str:
        """The pooled URL of the database behind `direct_url`."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{urls.database_name(direct_url)}"

    def close(self) -> None:
        """Stop PgBouncer (the process this fixture started) and remove its files."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module", params=["transaction", "session"])
def bouncer(pg: Databases, request: pytest.FixtureRequest) -> Iterator[Bouncer]:
    """A real PgBouncer in transaction, then session, mode."""
    if not Path(PGBOUNCER).exists():
        pytest.fail("pgbouncer is required (apt-get install pgbouncer; scripts/dev test does)")
    server = Bouncer(pg, request.param)
    try:
        yield server
    finally:
        server.close()


def test_apply_refuses_a_transaction_pooled_url_and_names_the_variable(bouncer, pg, project):
    direct = pg.new("pooled")
    result = run_invoke(project, "apply", env={"DATABASE_URL": bouncer.url(direct)})
    if bouncer.mode == "session":  # one server session per client: safe, applies
        assert result.returncode == 0, result.stdout + result.stderr
        return
    assert result.returncode == 1, result.stdout + result.stderr
    out = " ".join((result.stdout + result.stderr).split())
    assert "transaction-mode connection pooler" in out and "DATABASE_UNPOOLED_URL" in out, out
    assert "Traceback" not in out
    assert pg.query(direct, "SELECT to_regclass('public.users')")[0][0] is None  # untouched
    preview = run_invoke(project, "apply", "--dry-run", env={"DATABASE_URL": bouncer.url(direct)})
    assert preview.returncode == 0, preview.stdout + preview.stderr  # reads only: a warning
    assert "warning:" in preview.stderr and "DATABASE_UNPOOLED_URL" in preview.stderr


def test_apply_prefers_database_unpooled_url_and_says_so(bouncer, pg, project):
    if bouncer.mode != "transaction":
        pytest.skip("one case is enough")
    direct = pg.new("unpooled")
    env = {"DATABASE_URL": bouncer.url(direct), "DATABASE_UNPOOLED_URL": direct}
    result = run_invoke(project, "apply", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "using DATABASE_UNPOOLED_URL" in result.stderr
    assert pg.query(direct, "SELECT to_regclass('public.users') IS NOT NULL")[0][0]
    status = run_invoke(project, "status", "--format", "json", env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["state"] == "head"


def test_pooler_probe_has_no_false_positive_on_a_direct_connection(pg):
    from deploy.target import connect, transaction_pooled

    url = pg.new("direct")
    conn = connect(url)
    try:
        assert not any(transaction_pooled(conn, url) for _ in range(5))
    finally:
        conn.close()


def test_pooler_probe_detects_transaction_mode_every_time(bouncer, pg):
    from deploy.target import connect, transaction_pooled

    url = bouncer.url(pg.new("probe"))
    conn = connect(url)
    try:
        found = [transaction_pooled(conn, url) for _ in range(5)]
    finally:
        conn.close()
    assert found == [bouncer.mode == "transaction"] * 5


# --- one pre-deploy command --------------------------------------------------------------------


def railway_problems(config_file: Path) -> list[str]:
    """What would make Railway skip or fail the pre-deploy step of `config_file`."""
    return check_project(config_file.parent)


def test_repository_railway_json_has_exactly_one_pre_deploy_command():
    config = json.loads((REPO / "railway.json").read_text())
    command = config["deploy"]["preDeployCommand"]
    assert isinstance(command, str) or (isinstance(command, list) and len(command) == 1)
    assert railway_problems(REPO / "railway.json") == []
    assert "invoke apply" in (command if isinstance(command, str) else command[0])


@pytest.mark.parametrize(("value", "problem"), [
    (["invoke apply", "invoke serve"], "2 elements"),
    ([], "empty"),
    ("", "empty"),
    (["invoke apply; invoke x"], None),
    (42, "string"),
])
def test_pre_deploy_command_rules(value, problem, tmp_path):
    path = tmp_path / "railway.json"
    path.write_text(json.dumps({"deploy": {"preDeployCommand": value}}))
    problems = railway_problems(path)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems


def test_check_reports_a_two_element_pre_deploy_command(project):
    (project / "railway.json").write_text(json.dumps(
        {"deploy": {"preDeployCommand": ["invoke apply", "echo done"]}}))
    result = run_invoke(project, "check", "--scratch", "local")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "preDeployCommand is an array of 2" in " ".join(result.stdout.split())
    (project / "railway.json").write_text(json.dumps(
        {"deploy": {"preDeployCommand": "invoke apply && echo done"}}))
    result = run_invoke(project, "check", "--scratch", "local")
    assert result.returncode == 0, result.stdout + result.stderr


# --- alembic_version for apps that check it at start ----------------------------------------


def _stamp(project: Path, revision: str) -> None:
    path = project / "pyproject.toml"
    path.write_text(path.read_text().replace(
        "[tool.deploy]\n", f'[tool.deploy]\nalembic_stamp = "{revision}"\n', 1))


def test_alembic_stamp_keeps_exactly_one_row_after_apply(pg, project):
    _stamp(project, "4f2e1c0d9a7b")
    url = pg.new("alembic")
    assert run_invoke(project, "apply", "--target", url).returncode == 0
    assert pg.query(url, "SELECT version_num FROM alembic_version") == [("4f2e1c0d9a7b",)]
    # an old app's rows are replaced; the table is not drift; a no-op apply keeps the row
    pg.execute(url, "DELETE FROM alembic_version; INSERT INTO alembic_version VALUES ('old1'), "
                    "('old2')")
    again = run_invoke(project, "apply", "--target", url)
    assert again.returncode == 0, again.stdout + again.stderr
    assert pg.query(url, "SELECT version_num FROM alembic_version") == [("4f2e1c0d9a7b",)]
    status = run_invoke(project, "status", "--target", url, "--format", "json")
    assert json.loads(status.stdout)["state"] == "head"


def test_without_alembic_stamp_no_table_is_made(pg, project):
    url = pg.new("noalembic")
    assert run_invoke(project, "apply", "--target", url).returncode == 0
    assert pg.query(url, "SELECT to_regclass('alembic_version')") == [(None,)]


def test_alembic_stamp_must_be_a_revision_string(project):
    path = project / "pyproject.toml"
    path.write_text(path.read_text().replace("[tool.deploy]\n",
                                             "[tool.deploy]\nalembic_stamp = 3\n"))
    result = run_invoke(project, "apply", "--target", "postgresql://x@127.0.0.1:1/x")
    assert result.returncode == 1
    assert "alembic_stamp" in result.stdout + result.stderr


