"""Plan files that are not what a reviewer sees, or not plans at all, are refused clearly.

A NUL byte ends the SQL libpq sends (the rest of the file is silently skipped), invalid
UTF-8 or control characters make GitHub show the file as binary, bidi overrides reorder
what is displayed: each is refused by plan, check and apply, naming file, line and offset.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import Databases, run_invoke
from test_apply import add_plan, head

from deploy.config import load_config
from deploy.errors import DeployError
from deploy.plans import parse_plan, render_plan

ADD = "ALTER TABLE users ADD COLUMN nickname text;"
HIDDEN = "ALTER TABLE users DROP COLUMN email;"


def _columns(pg: Databases, url: str) -> set[str]:
    rows = pg.query(url, "SELECT column_name FROM information_schema.columns "
                         "WHERE table_schema = 'public' AND table_name = 'users'")
    return {name for (name,) in rows}


def _plan_with_hidden_tail(project: Path, pg: Databases, separator: str) -> Path:
    """A plan whose `to` is what the SQL before `separator` produces; a drop hides after it."""
    return add_plan(project, pg, ADD, "nul byte", body=f"{ADD}\n{separator}\n{HIDDEN}\n")


def test_nul_byte_plan_is_refused_by_apply_and_nothing_runs(pg: Databases, project: Path) -> None:
    path = _plan_with_hidden_tail(project, pg, "\x00")
    url = pg.new("nul")
    done = run_invoke(project, "apply", "--target", url, "--wait", "0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{path.name}:" in done.stderr and "not clean UTF-8 text" in done.stderr
    assert "U+0000" in done.stderr and "byte offset" in done.stderr
    assert "Traceback" not in done.stderr
    assert _columns(pg, url) == set()  # refused before anything touched the database
    dry = run_invoke(project, "apply", "--target", url, "--wait", "0", "--dry-run")
    assert dry.returncode == 1 and "would apply" not in dry.stdout


def test_nul_byte_plan_is_a_finding_of_check_and_plan_refuses(project: Path, pg: Databases) -> None:
    path = _plan_with_hidden_tail(project, pg, "\x00")
    line = path.read_text().split("\x00")[0].count("\n") + 1
    done = run_invoke(project, "check", "--scratch", "local", "--format", "json")
    assert done.returncode == 1
    document = json.loads(done.stdout)
    damaged = [f for f in document["findings"] if f["kind"] == "damaged"]
    assert len(damaged) == 1 and damaged[0]["line"] == line
    assert "not clean UTF-8" in damaged[0]["message"]
    planned = run_invoke(project, "plan", "--scratch", "local", "--check")
    assert planned.returncode == 1 and "not clean UTF-8 text" in planned.stderr


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\xff\xfe", "0xff is not valid UTF-8"),
        (b"\xc3(", "0xc3 is not valid UTF-8"),
        (b"\x1b[8m", "U+001B"),
        ("\u202e".encode(), "U+202E"),
        ("\ufeff".encode(), "U+FEFF"),
        (b"\x7f", "U+007F"),
    ],
    ids=["invalid-byte", "truncated-sequence", "escape", "bidi-override", "bom", "del"],
)
def test_unclean_bytes_are_refused_with_line_and_offset(
    tmp_path: Path, raw: bytes, expected: str
) -> None:
    good = render_plan("x", "sha256:" + "0" * 64, "sha256:" + "1" * 64, 15, [],
                       "-- comment\nSELECT 1;").encode()
    offset = good.index(b"SELECT")
    path = tmp_path / "20990101T000000Z_x.sql"
    path.write_bytes(good[:offset] + raw + good[offset:])
    with pytest.raises(DeployError) as refused:
        parse_plan(path)
    line = good[:offset].count(b"\n") + 1
    assert refused.value.line == line
    assert f"{path}:{line}" in refused.value.message
    assert f"(byte offset {offset})" in refused.value.message
    assert expected in refused.value.message


def test_tabs_carriage_returns_and_non_ascii_text_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "20990101T000000Z_x.sql"
    text = render_plan("café", "sha256:" + "0" * 64, "sha256:" + "1" * 64, 15, [],
                       "COMMENT ON TABLE users IS\t'Lernende – 学生 ✓';\r\n")
    path.write_bytes(text.encode())
    assert parse_plan(path).name == "café"


def test_a_control_character_in_a_plan_name_does_not_make_an_unreadable_plan(
    tmp_path: Path,
) -> None:
    path = tmp_path / "20990101T000000Z_x.sql"
    path.write_text(render_plan("add\x1b[2Jtags", "sha256:" + "0" * 64, "sha256:" + "1" * 64,
                                15, [], "SELECT 1;"))
    assert parse_plan(path).name == "add [2Jtags"


# --- plans with nothing in them, and headers that are not numbers ----------------------------


@pytest.mark.parametrize(
    "body", ["", "-- only a comment\n/* and another */\n"], ids=["empty", "comments-only"]
)
def test_a_plan_without_statements_is_refused_not_applied(
    pg: Databases, project: Path, body: str
) -> None:
    config = load_config(project)
    url = pg.new("emptyplan")
    assert run_invoke(project, "apply", "--target", url, "--wait", "0").returncode == 0
    path = config.plans_dir / "20990101T000000Z_nothing.sql"
    path.write_text(render_plan("nothing", head(project), "sha256:" + "ab" * 32, 15, [], body))
    for extra in ((), ("--dry-run",)):
        done = run_invoke(project, "apply", "--target", url, "--wait", "0", *extra)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "has no SQL statements" in done.stderr and path.name in done.stderr
        assert "Traceback" not in done.stderr and "would apply" not in done.stdout


@pytest.mark.parametrize("value", ["²", "١٥", "15.0", "fifteen"])
def test_a_postgres_header_that_is_not_a_number_is_a_damaged_header(
    project: Path, value: str
) -> None:
    config = load_config(project)
    path = sorted(config.plans_dir.glob("*.sql"))[0]
    path.write_text(re.sub(r"(?m)^-- postgres: .*$", f"-- postgres: {value}", path.read_text()))
    done = run_invoke(project, "status", "--target", "postgresql://u@127.0.0.1:1/x", "--wait", "0")
    assert done.returncode == 1
    assert "damaged header" in done.stderr and f"{path.name}:4" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_nul_byte_in_a_schema_sql_file_is_a_clear_error(project: Path) -> None:
    path = sorted((project / "schema" / "sql").glob("*.sql"))[0]
    path.write_bytes(path.read_bytes() + b"\n\x00 DROP VIEW due_cards;\n")
    done = run_invoke(project, "plan", "--scratch", "local", "--check")
    assert done.returncode == 1
    assert f"SQL file {path}:" in done.stderr and "not clean UTF-8 text" in done.stderr
    assert "Traceback" not in done.stderr and "Unexpected" not in done.stderr
