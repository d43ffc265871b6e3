"""The one output document and its renderers (deploy/output.py), and the command builders
that fill it (deploy/views.py): no database needed."""

from __future__ import annotations

import io
import json
import re
import time

import pytest

from deploy import errors
from deploy.applier import AppliedPlan, ApplyResult
from deploy.output import (
    Annotation,
    Block,
    Document,
    Row,
    Section,
    annotations,
    emit,
    render_markdown,
    render_text,
)
from deploy.report import Output
from deploy.status import StatusResult
from deploy.views import apply_document, rollback_document, status_document

FP = "sha256:" + "ab" * 32
HEAD = "sha256:" + "cd" * 32


class Terminal(io.StringIO):
    """A stdout that says it is a terminal, so colour is on."""

    def isatty(self) -> bool:
        return True


def sample() -> Document:
    return Document(
        "demo", errors.PENDING, "invoke demo: pending", status="pending", data={"items": [1]},
        sections=[
            Section([Row("first line", tone="green"),
                     Row("is not approved", label="hazard:", tone="red", markdown="- hazard",
                         details="select 1;\nselect 2;",
                         annotation=Annotation("Hazard", "a\nb", "p.sql", 3))]),
            Section([Row("a.sql 1s", cells=["`a.sql`", "1s"]), Row("terminal only"),
                     Row(cells=["`b.sql`", "2s"])], heading="Plans", columns=["plan", "time"]),
            Section([Block("select 'new';", "sql", summary="new", left_out="new left out",
                           terminal=False),
                     Block("select 'old';", "sql", summary="old", left_out="old left out",
                           terminal=False),
                     Block("shown on both")]),
        ],
    )


def test_one_document_renders_as_text_json_and_markdown(monkeypatch, tmp_path):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    text = io.StringIO()
    assert emit(Output("text", out=text, err=io.StringIO()), sample()) == errors.PENDING
    assert text.getvalue().splitlines() == [
        "first line", "hazard: is not approved", "    select 1;", "    select 2;",
        "a.sql 1s", "terminal only", "", "shown on both", ""]
    data = io.StringIO()
    emit(Output("json", out=data, err=io.StringIO()), sample())
    assert json.loads(data.getvalue()) == {"version": 1, "command": "demo", "status": "pending",
                                           "exit_code": errors.PENDING, "items": [1]}
    markdown = summary.read_text()
    assert markdown.count("### invoke demo: pending\n\n- hazard\n\n#### Plans\n\n"
                          "| plan | time |\n|---|---|\n| `a.sql` | 1s |\n| `b.sql` | 2s |\n") == 2
    assert "<details><summary>new</summary>\n\n```sql\nselect 'new';\n```\n\n</details>" in markdown
    assert "terminal only" not in markdown and "first line" not in markdown


def test_colour_only_on_a_terminal_and_never_on_an_indent():
    doc = Document("demo", 0, "t", sections=[Section([Row("x", label="  landed", tone="green"),
                                                      Row("all red", tone="red")])])
    out = Terminal()
    emit(Output("text", out=out, err=io.StringIO()), doc)
    assert out.getvalue().splitlines() == ["  \033[32mlanded\033[0m x", "\033[31mall red\033[0m"]
    assert render_text(doc, lambda text, _name: text) == ["  landed x", "all red"]


def test_markdown_drops_the_last_blocks_first_to_fit():
    full = render_markdown(sample())
    shorter = render_markdown(sample(), limit=len(full) - 10)
    assert "select 'new'" in shorter and "select 'old'" not in shorter
    assert "old left out" in shorter and "new left out" not in shorter
    tiny = render_markdown(sample(), limit=120)
    assert len(tiny) <= 120 and tiny.endswith("… (truncated)\n")


def test_annotations_are_escaped_and_capped():
    assert annotations(sample(), "app/") == ["::error file=app/p.sql,line=3,title=Hazard::a%0Ab"]
    many = Document("demo", 3, "t", sections=[Section(
        [Row(f"h{i}", annotation=Annotation("H", f"h{i}")) for i in range(12)])])
    lines = annotations(many)
    assert len(lines) == 10 and lines[-1].endswith("::3 more finding(s): see the job log or "
                                                   "step summary.")


@pytest.mark.parametrize("status", ["applied", "dry-run"])
def test_apply_and_rollback_list_their_plans_alike(status):
    plans = [AppliedPlan("a.sql", FP, HEAD, 1.234, ("create table t()",), resumed_at_step=1)]
    result = ApplyResult(status, "host/db", FP, HEAD, plans)
    applied = render_text(apply_document(result), lambda text, _name: text)
    undone = render_text(rollback_document(result), lambda text, _name: text)
    if status == "dry-run":
        assert applied[:3] == ["-- would apply a.sql (abababababab -> cdcdcdcdcdcd, resuming at "
                               "step 2)", "create table t();", ""]
        assert undone[0] == ("-- would roll back a.sql (abababababab -> cdcdcdcdcdcd, resuming "
                             "at step 2) with its reverse")
    else:
        assert applied == ["applied a.sql in 1.23s (resumed at step 2)",
                           "host/db is now at cdcdcdcdcdcd."]
        assert undone[0] == "rolled back a.sql in 1.23s (resumed at step 2)"
    assert "| `a.sql` | 1.23s |" in render_markdown(apply_document(result))
    assert "| plan undone | time |" in render_markdown(rollback_document(result))


def test_status_document_keeps_its_json_fields_and_exit_codes():
    result = StatusResult("drift", "host/db", FP, HEAD, None,
                          differences=[f"table t{i}" for i in range(45)], message="Repair it.")
    doc = status_document(result)
    assert doc.exit_code == errors.DRIFT and doc.status is None
    text = render_text(doc, lambda text, _name: text)
    assert "state:    DRIFT (matches no reviewed state)" in text and "  … and 5 more" in text
    assert render_markdown(doc).count("- `table t") == 20
    for state, code in [("head", 0), ("pending", 2), ("ahead", 0), ("no-plans", 0)]:
        assert status_document(StatusResult(state, "h", FP, HEAD, None)).exit_code == code


def test_the_status_endpoint_serves_the_status_document_and_appends_no_summary(
    pg, project, monkeypatch, tmp_path
):
    from deploy.config import load_config
    from deploy.health import StatusCache

    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    url = pg.new("endpoint_summary")
    document = StatusCache(load_config(project), target=url, log=lambda _line: None).get()
    assert document["version"] == 1 and document["command"] == "status"
    assert document["state"] == "pending" and document["exit_code"] == errors.PENDING
    assert not summary.exists()  # a server is no CI step: it used to append a summary


def test_progress_lines_from_many_threads_never_interleave():
    """plan and check report progress from threads (proofs run side by side): each line is
    written whole, with its newline."""
    import io
    import threading

    from deploy.report import Output

    class Slow(io.StringIO):
        def write(self, text: str) -> int:  # give other threads every chance to cut in
            time.sleep(0)
            return super().write(text)

    err = Slow()
    output = Output("text", out=io.StringIO(), err=err)
    threads = [threading.Thread(target=lambda n=n: [output.progress(f"thread {n} line {i}")
                                                     for i in range(200)]) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = err.getvalue().splitlines()
    assert len(lines) == 800
    assert all(re.fullmatch(r"\[\s*[\d.]+s\] thread \d line \d+", line) for line in lines)
