"""A newcomer can follow every word: README, set-up, and the messages of the paths they take
when something goes wrong (issue 13)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deploy import target as target_db
from deploy import urls
from deploy.config import load_config
from deploy.errors import DeployError
from deploy.planner import make_plan
from deploy.proof import apply_and_compare
from tests.conftest import REPO, run_invoke

README = REPO / "README.md"
DECK_DESCRIPTION = "    description: Mapped[str | None] = mapped_column(Text)"


def edit_models(project: Path, old: str, new: str) -> None:
    path = project / "schema" / "models.py"
    text = path.read_text()
    assert old in text, f"models.py no longer contains {old!r}"
    path.write_text(text.replace(old, new, 1))


# --- README and set-up -------------------------------------------------------------------


def test_readme_links_resolve_inside_the_repository():
    text = README.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert "docs/DESIGN.md" in local
    for link in local:
        path = (README.parent / link.split("#")[0]).resolve()
        assert path.is_relative_to(REPO), f"README links outside the repository: {link}"
        assert path.exists(), f"README links to a missing file: {link}"
    design = (REPO / "docs" / "DESIGN.md").read_text()
    assert "## Plan files" in design and "## Exit codes" in design


def _readme_commands() -> list[list[str]]:
    """Every `invoke …` command the README writes, in inline code or in code blocks."""
    text = README.read_text()
    blocks = re.findall(r"(?ms)^```(?:bash|sh)\n(.*?)^```", text)  # shell blocks only
    prose = re.sub(r"(?ms)^```[a-z]*\n.*?^```", "", text)
    snippets = blocks + re.findall(r"`([^`\n]*invoke [^`\n]*)`", prose)
    commands = []
    for snippet in snippets:
        for line in snippet.splitlines():
            line = line.split("#", 1)[0]
            for match in re.finditer(r"\binvoke (-*[a-z][^|;&]*)", line):
                rest = match.group(1)
                # The task name, then every flag it uses (quoted values may span lines).
                name = re.match(r"-*[a-z-]+", rest).group(0)
                commands.append([name, *re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest)])
    return commands


def test_every_invoke_command_in_the_readme_names_a_real_task_and_real_flags():
    from invoke import Collection

    sys.path.insert(0, str(REPO))
    import tasks

    collection = Collection.from_module(tasks)
    commands = _readme_commands()
    assert len(commands) > 10
    for words in commands:
        if words[0].startswith("-"):  # `invoke --list`
            assert words[0] in ("--list", "--help"), words
            continue
        name = words[0]
        assert name in collection.task_names, f"README: `invoke {' '.join(words)}`: no such task"
        task = collection[name]
        flags = {"--" + n for arg in task.get_arguments() for n in arg.names if len(n) > 1}
        for word in words[1:]:
            if word.startswith("--"):
                assert word.split("=")[0] in flags, (
                    f"README: `invoke {' '.join(words)}`: {word} is not a flag of {name} "
                    f"({sorted(flags)})"
                )


def test_readme_says_how_bare_invoke_works_after_the_set_up():
    text = README.read_text()
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "source .venv/bin/activate" in quick_start
    # From the set-up on, the activation comes before the first bare `invoke …` instruction.
    start = text.index("## Quick start")
    first_bare = re.compile(r"(?<!dev )`invoke ").search(text, start)
    assert first_bare is not None and text.index("source .venv/bin/activate") < first_bare.start()
    activate = REPO / ".venv" / "bin" / "activate"
    if not activate.is_file():
        pytest.skip("no .venv here (the suite was not started by scripts/dev)")
    done = subprocess.run(
        ["bash", "-c", "source .venv/bin/activate && invoke --list"], cwd=REPO,
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "sandbox" in done.stdout and "plan" in done.stdout


def _fake_checkout(tmp_path: Path, postgres: str) -> tuple[Path, Path, dict[str, str]]:
    """A copy of the repository whose .venv is this suite's Python, with apt-get, sudo and
    npm replaced by recorders, and no shellcheck on PATH."""
    root = tmp_path / "checkout"
    for name in ("scripts", "deploy", "tests"):
        shutil.copytree(REPO / name, root / name,
                        ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    text = (REPO / "pyproject.toml").read_text()
    text = re.sub(r"(?m)^postgres = .*$", f"postgres = {postgres}", text)
    (root / "pyproject.toml").write_text(text)
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (venv_bin / "python").chmod(0o755)
    digest = subprocess.run(["sha256sum", "pyproject.toml"], cwd=root, capture_output=True,
                            text=True, check=True).stdout[:16]
    (root / ".venv" / f".installed-{digest}").touch()
    calls = tmp_path / "calls"
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("apt-get", "sudo", "npm"):
        (fake / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\nexit 1\n')
        (fake / name).chmod(0o755)
    for tool in ("bash", "sha256sum", "cut", "id", "dirname", "tail", "rm", "touch", "env",
                 "mkdir", "tee", "cat"):
        found = shutil.which(tool)
        if found:
            (fake / tool).symlink_to(found)
    (fake / "python3").symlink_to(sys.executable)
    env = {"PATH": str(fake), "HOME": str(tmp_path), "NO_COLOR": "1"}
    return root, calls, env


def test_a_bad_postgres_setting_is_the_tools_error_before_any_apt_get(tmp_path):
    root, calls, env = _fake_checkout(tmp_path, '"15x"')
    done = subprocess.run(["bash", "scripts/dev", "true"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "postgres = '15x'" in done.stderr and "major version as a number" in done.stderr
    assert not calls.exists(), calls.read_text()


def test_scripts_dev_test_installs_nothing_system_wide_but_postgres_and_pgbouncer(tmp_path):
    root, calls, env = _fake_checkout(tmp_path, "15")
    from deploy.scratch import find_local_binaries

    # PostgreSQL itself may be installed system-wide (said so); here it is already present.
    env["DEPLOY_PG_BINDIR"] = str(find_local_binaries(15))
    done = subprocess.run(["bash", "scripts/dev", "test", "--version"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pytest" in done.stdout + done.stderr
    installs = [line for line in (calls.read_text() if calls.exists() else "").splitlines()
                if " install " in line]
    # Only PostgreSQL (the scratch server) and PgBouncer (the pooler tests), and said so.
    assert all(re.search(r"install .*(postgresql-\d+|pgbouncer)", line) for line in installs)
    if installs:
        assert "system-wide" in done.stderr
    assert "shellcheck" not in done.stderr
    # shellcheck comes with the dev extras, into the virtualenv.
    assert (Path(sys.executable).parent / "shellcheck").exists()


def test_scripts_dev_passes_shellcheck():
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(shellcheck).exists():
        pytest.skip("shellcheck is not installed")
    done = subprocess.run([shellcheck, str(REPO / "scripts" / "dev")], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout


# --- invoke sandbox ------------------------------------------------------------------------


def test_sandbox_gives_a_database_for_apply_status_and_serve_and_deletes_it(project):
    command = [sys.executable, "-m", "invoke", "--search-root", str(REPO), "sandbox",
               "--scratch", "local"]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    process = subprocess.Popen(command, cwd=project, env={**env, "NO_COLOR": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            found = re.search(r"export DATABASE_URL='([^']+)'", line)
            url = found.group(1) if found else None
        assert url, process.stderr.read() if process.poll() is not None else "no URL printed"
        applied = run_invoke(project, "apply", env={"DATABASE_URL": url})
        assert applied.returncode == 0, applied.stderr
        status = run_invoke(project, "status", env={"DATABASE_URL": url})
        assert status.returncode == 0 and "at head" in status.stdout, status.stderr
        socket_dir = Path(urls.psycopg2_dsn(url)["dsn"].split("host=")[1].split("&")[0]
                          .replace("%2F", "/"))
        assert socket_dir.is_dir()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert not socket_dir.exists(), "the sandbox left its server directory behind"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- plan: --sql-file, atomic writes, empty SQL files, renames, enum labels ----------------


def test_sql_file_ending_in_blank_lines_is_saved_with_hazard_lines_on_the_statement(
    project, tmp_path
):
    config = load_config(project)
    edit_models(project, DECK_DESCRIPTION, "    summary: Mapped[str | None] = mapped_column(Text)")
    rename = tmp_path / "rename.sql"
    rename.write_text('\n-- keep the data\nalter table "public"."decks" rename column '
                      '"description" to "summary";\n\n\n')
    result = make_plan(config, name="rename", scratch="local", sql_file=rename)
    assert result.status == "written"
    lines = result.plan_path.read_text().splitlines()
    assert result.hazards
    for hazard in result.hazards:
        assert "rename column" in lines[hazard.line - 1], (hazard, lines)


def test_a_failed_write_leaves_no_plan_and_no_snapshot_behind(project):
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        'snapshot = "schema/schema.sql"', 'snapshot = "schema/blocked/schema.sql"'))
    (project / "schema" / "blocked").write_text("a file where a directory is expected\n")
    edit_models(project, DECK_DESCRIPTION, DECK_DESCRIPTION + "\n    mood: Mapped[str | None] = "
                "mapped_column(Text)")
    before = sorted(p.name for p in (project / "schema").rglob("*"))
    done = run_invoke(project, "plan", "--name", "add mood", "--scratch", "local")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "nothing more was done" not in done.stderr
    assert "No plan and no snapshot file was written" in done.stderr
    assert sorted(p.name for p in (project / "schema").rglob("*")) == before


def test_empty_and_comment_only_sql_files_contribute_nothing(project):
    sql = project / "schema" / "sql"
    (sql / "30_empty.sql").write_text("")
    (sql / "31_comments.sql").write_text("-- views will go here\n/* later */\n\n")
    result = make_plan(load_config(project), name="nothing", scratch="local")
    assert result.status == "up-to-date"


def test_a_dropped_and_added_column_of_one_type_is_reported_as_a_possible_rename(project):
    edit_models(project, DECK_DESCRIPTION, "    summary: Mapped[str | None] = mapped_column(Text)")
    done = run_invoke(project, "plan", "--check", "--scratch", "local")
    assert done.returncode == 2, done.stderr
    assert "note:" in done.stdout
    assert 'ALTER TABLE "public"."decks" RENAME COLUMN "description" TO "summary";' in done.stdout
    assert "--sql-file" in done.stdout


def test_enum_labels_with_single_quotes_are_planned_as_valid_sql(project):
    config = load_config(project)
    mood = project / "schema" / "sql" / "50_mood.sql"
    mood.write_text("CREATE TYPE mood AS ENUM ('it''s fine', 'bad');\n")
    created = make_plan(config, name="mood", scratch="local")
    assert created.status == "written"
    assert "'it''s fine'" in created.plan_path.read_text()
    mood.write_text("CREATE TYPE mood AS ENUM ('it''s fine', 'don''t know', 'bad');\n")
    added = make_plan(config, name="more moods", scratch="local")
    assert added.status == "written"
    assert "'don''t know'" in added.plan_path.read_text()  # (add value, or a re-created type)
    assert make_plan(config, name="again", scratch="local").status == "up-to-date"


def test_an_error_in_generated_sql_says_the_tool_generated_it(pg):
    url = pg.new("generated")
    with pytest.raises(DeployError) as refused:
        apply_and_compare(url, "create type \"public\".\"m\" as enum ('it's');\n", {}, None)
    message = refused.value.message
    assert "this tool generated" in message and "Fix the SQL" not in message
    with pytest.raises(DeployError) as failed:
        apply_and_compare(url, 'alter table "public"."nope" add column "x" text;\n', {}, None)
    assert "this tool generated" in failed.value.message


def test_a_foreign_key_to_a_missing_table_names_the_column_and_what_to_do(project):
    edit_models(project, 'ForeignKey("decks.id", ondelete="CASCADE"))',
                'ForeignKey("deck.id", ondelete="CASCADE"))')
    with pytest.raises(DeployError) as refused:
        make_plan(load_config(project), name="x", scratch="local")
    message = refused.value.message
    assert "flashcards.deck_id" in message and "'deck'" in message
    assert "ForeignKey" in message and "shown below" not in message


# --- serve, permissions, URLs, connection messages ----------------------------------------


def test_serve_refuses_to_start_without_a_database_url(project):
    done = run_invoke(project, "serve", "--port", "0", timeout=30)
    assert done.returncode == 1
    assert "DATABASE_URL" in done.stderr and "--target" not in done.stderr


def test_healthz_advice_names_no_flag_serve_lacks(project):
    from deploy.health import StatusCache

    cache = StatusCache(load_config(project), target="postgresql://u:pw@127.0.0.1:1/db",
                        wait=0.1, log=lambda _m: None)
    error = str(cache.get()["error"])
    assert "Cannot connect" in error
    assert "--wait" not in error and "--target" not in error


def test_permission_denied_on_the_history_schema_says_which_grant(project, pg):
    url = pg.new("grants")
    assert run_invoke(project, "apply", "--target", url).returncode == 0
    pg.execute(url, "DROP ROLE IF EXISTS newbie; CREATE ROLE newbie LOGIN")
    newbie = url.replace("postgresql://postgres@", "postgresql://newbie@", 1)
    assert newbie != url
    done = run_invoke(project, "apply", "--target", newbie)
    assert done.returncode == 1
    assert "permission denied for schema schema_deploy" in done.stderr
    assert "GRANT USAGE, CREATE ON SCHEMA schema_deploy TO newbie" in done.stderr
    status = run_invoke(project, "status", "--target", newbie)
    assert "GRANT USAGE" in status.stderr, status.stderr
    # A fresh database: the history schema cannot even be created.
    fresh = pg.new("grants_fresh")
    first = run_invoke(project, "apply", "--target",
                       fresh.replace("postgresql://postgres@", "postgresql://newbie@", 1))
    assert first.returncode == 1
    assert "CREATE on the database" in first.stderr, first.stderr
    pg.execute(url, "DROP OWNED BY newbie; DROP ROLE newbie")


def test_percent_encoding_error_shows_how():
    with pytest.raises(DeployError) as refused:
        urls.parse_url("postgresql://app:p@ss@db.example.com:5432/app")
    message = refused.value.message
    assert "@ as %40" in message and "urllib.parse.quote" in message
    assert "p@ss" not in message


def test_connection_retries_are_whole_clean_lines_and_end_in_one_sentence():
    lines: list[str] = []
    with pytest.raises(DeployError) as refused:
        target_db.connect("postgresql://u:secret@127.0.0.1:1/db", wait=1.0,
                          progress=lines.append)
    assert lines, "retries must show progress"
    for line in lines:
        assert "\t" not in line and "\n" not in line
        # libpq's error, without its hint: never cut inside a word.
        assert re.search(r"\(connection to server at .*Connection refused\); retrying in",
                         line), line
    message = refused.value.message
    assert "\t" not in message and "?." not in message and "secret" not in message
    assert "Connection refused. Is the server running" in message
    assert "connections? Check the host" in message


def test_an_unresolvable_host_shows_progress_and_a_dns_hint(project):
    done = run_invoke(project, "status", "--target",
                      "postgresql://u:secret@no-such-host.invalid:5432/db", "--wait", "2")
    assert done.returncode == 1
    assert "retrying in" in done.stderr  # progress while it waits, not silence
    assert "does not resolve" in done.stderr and "secret" not in done.stderr


def test_a_slow_connection_attempt_says_it_is_still_connecting():
    # A listener that never answers: the TCP handshake completes, the server never speaks.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        lines: list[str] = []
        started = time.monotonic()
        with pytest.raises(DeployError):
            target_db.connect(f"postgresql://u:pw@127.0.0.1:{port}/db", wait=2.0,
                              progress=lines.append)
        assert any(line.startswith("still connecting to 127.0.0.1") for line in lines), lines
        assert time.monotonic() - started < 15
    assert threading.active_count() < 50
