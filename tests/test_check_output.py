"""What `invoke check` shows: JSON, text, GitHub annotations, the step summary, the PR comment."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import copy_project, run_invoke

from deploy import check_report, errors
from deploy.check_report import (
    COMMENT_MARKER,
    annotations,
    check_document,
    escape_data,
    escape_property,
    render_comment,
    render_markdown,
    show_check,
)
from deploy.checker import CheckResult, Finding, HazardCheck, PlanCheck, run_check
from deploy.config import Config, load_config
from deploy.planner import make_plan
from deploy.report import Output

DECK_DESCRIPTION = "    description: Mapped[str | None] = mapped_column(Text)\n"
DROP_DESCRIPTION = 'alter table "public"."decks" drop column "description";'
DELETES = 'DELETES_DATA drop column "public"."decks"."description"'
INCOMPATIBLE = 'BACKWARD_INCOMPATIBLE drop column "public"."decks"."description"'
REASON = "nobody filled it in since v3"


@dataclass
class Checked:
    project: Path
    config: Config
    plan: Path
    line: int  # line of the DROP COLUMN statement in the plan file
    result: CheckResult

    @property
    def rel(self) -> str:
        return f"schema/plans/{self.plan.name}"


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Checked:
    """A project whose newest plan drops a column; one of its two hazards is approved."""
    project = copy_project(tmp_path_factory.mktemp("output") / "project")
    models = project / "schema" / "models.py"
    models.write_text(models.read_text().replace(DECK_DESCRIPTION, "", 1))
    config = load_config(project)
    # One part (no contract part): the BACKWARD_INCOMPATIBLE hazard then needs its line.
    plan = make_plan(config, name="drop deck description", scratch="local",
                     contract=False).plan_path
    assert plan is not None
    # No `-- hazard:` lines at all: check must find both hazards in the body by itself.
    lines = [line for line in plan.read_text().split("\n") if not line.startswith("-- hazard:")]
    lines.insert(4, f"-- approve: {DELETES} -- {REASON}")
    plan.write_text("\n".join(lines))
    line = next(n for n, text in enumerate(lines, start=1) if DROP_DESCRIPTION in text)
    return Checked(project, config, plan, line, run_check(config, scratch="local"))


def render(checked: Checked, fmt: str) -> tuple[int, str]:
    out = io.StringIO()
    code = show_check(Output(fmt, out=out, err=io.StringIO()), checked.config, checked.result)
    return code, out.getvalue()


def test_json_document(checked, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    code, text = render(checked, "json")
    assert code == errors.UNAPPROVED_HAZARD
    doc = json.loads(text)
    assert doc["version"] == 1 and doc["command"] == "check"
    assert doc["status"] == "failed" and doc["exit_code"] == errors.UNAPPROVED_HAZARD
    assert doc["head"] == doc["models"] and doc["head"].startswith("sha256:")
    assert doc["counts"] == {"errors": 0, "drift": 0, "unapproved_hazards": 1}
    assert doc["drift"] is None and doc["target"] is None
    assert doc["findings"] == [{
        "severity": "hazard", "exit_code": 3, "kind": "hazard",
        "title": "Unapproved hazard: BACKWARD_INCOMPATIBLE",
        "message": f"{INCOMPATIBLE} is not approved. If it is intended, a reviewer adds this "
                   f"line to the plan's header:\n-- approve: {INCOMPATIBLE} -- <reason>",
        "file": checked.rel, "line": checked.line, "details": "",
    }]
    initial, new = doc["plans"]
    assert initial["file"].endswith("_initial_schema.sql") and initial["hazards"] == []
    assert new["file"] == checked.rel and new["name"] == "drop deck description"
    assert new["on_chain"] and new["replay"] == "landed" and new["replay_message"] == ""
    assert new["from"] == initial["to"] and new["to"] == doc["head"]
    assert new["hazards"] == [
        {"kind": "DELETES_DATA", "text": DELETES, "line": checked.line, "approved": True,
         "reason": REASON, "part": None},
        {"kind": "BACKWARD_INCOMPATIBLE", "text": INCOMPATIBLE, "line": checked.line,
         "approved": False, "reason": None, "part": None},
    ]
    assert new["expanded"] is None
    assert DROP_DESCRIPTION in new["sql"] and "-- plan:" not in new["sql"]
    # Every key the document has is documented in check_report's docstring.
    keys = set(doc) | set(doc["findings"][0]) | set(new) | set(new["hazards"][0])
    undocumented = [k for k in keys if f'"{k}"' not in (check_report.__doc__ or "")]
    assert undocumented == []


def test_text_and_annotations_point_at_the_statement(checked, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    code, text = render(checked, "text")
    assert code == errors.UNAPPROVED_HAZARD
    assert text.startswith("Schema check FAILED (exit 3): 1 unapproved hazard(s).")
    assert f"hazard: {checked.rel}:{checked.line}: {INCOMPATIBLE} is not approved." in text
    assert f"    -- approve: {INCOMPATIBLE} -- <reason>" in text
    assert "\033[" not in text  # no colour when stdout is not a terminal
    assert "::error" not in text

    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    # The project sits in a subdirectory of the checkout: annotations name files from the top.
    monkeypatch.setenv("GITHUB_WORKSPACE", str(checked.project.parent))
    _, text = render(checked, "text")
    errors_ = [line for line in text.splitlines() if line.startswith("::error")]
    assert errors_ == [
        f"::error file=project/{checked.rel},line={checked.line},"
        "title=Unapproved hazard%3A BACKWARD_INCOMPATIBLE::"
        f"{INCOMPATIBLE} is not approved. If it is intended, a reviewer adds this line to the "
        f"plan's header:%0A-- approve: {INCOMPATIBLE} -- <reason>"
    ]
    assert DROP_DESCRIPTION in checked.plan.read_text().split("\n")[checked.line - 1]


def test_step_summary_markdown(checked, monkeypatch, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("from an earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    render(checked, "json")
    markdown = summary.read_text()
    assert markdown.startswith("from an earlier step\n## ❌ Schema check failed (exit 3)\n")
    assert (f"| ✋ unapproved hazard | {INCOMPATIBLE} is not approved. If it is intended, a "
            f"reviewer adds this line to the plan's header: -- approve: {INCOMPATIBLE} -- "
            f"&lt;reason&gt; | `{checked.rel}:{checked.line}` |") in markdown
    assert "| Plan | Line | Kind | Hazard | Approval |" in markdown
    assert (f"| `{checked.plan.name}` | {checked.line} | DELETES_DATA | `{DELETES}` | "
            f"✅ {REASON} |") in markdown
    assert (f"| `{checked.plan.name}` | {checked.line} | BACKWARD_INCOMPATIBLE | "
            f"`{INCOMPATIBLE}` | ❌ not approved |") in markdown
    block = (f"<details><summary><code>{checked.rel}</code>: drop deck description</summary>"
             "\n\n```sql\n")
    assert block in markdown
    after = markdown.split(block, 1)[1]
    assert DROP_DESCRIPTION in after.split("```\n\n</details>", 1)[0]
    # Newest plan first: the one under review comes before the initial schema.
    assert markdown.index(block) < markdown.index("_initial_schema.sql</code>")


def test_pr_comment_shows_the_plans_of_the_pull_request(checked, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    doc = json.loads(render(checked, "json")[1])
    body = render_comment(doc, [f"backend/{checked.rel}", "README.md"])
    assert body.startswith(COMMENT_MARKER + "\n### ❌ Schema check failed (exit 3)\n")
    assert "#### Plans in this pull request (newest first)" in body
    assert f"<code>{checked.rel}</code>" in body and DROP_DESCRIPTION in body
    assert "_initial_schema.sql" not in body
    assert f"`{INCOMPATIBLE}` | ❌ not approved" in body

    quiet = render_comment(doc, [])
    assert "No plan file changed in this pull request." in quiet
    assert INCOMPATIBLE in quiet  # the finding itself is still shown

    assert "Schema check could not run" in render_comment(None, [])

    document, changed = tmp_path / "check.json", tmp_path / "changed.txt"
    document.write_text(json.dumps(doc))
    changed.write_text(f"{checked.rel}\n")
    assert check_report.main(["comment", str(document), "--changed", str(changed)]) == 0
    assert capsys.readouterr().out == render_comment(doc, [checked.rel])


def test_command_line_json_summary_and_side_file(checked, tmp_path):
    summary, side = tmp_path / "summary.md", tmp_path / "check.json"
    done = run_invoke(
        checked.project, "check", "--scratch", "local", "--format", "json",
        env={"GITHUB_STEP_SUMMARY": str(summary), "SCHEMA_CHECK_JSON": str(side),
             "GITHUB_ACTIONS": "true"},
    )
    assert done.returncode == errors.UNAPPROVED_HAZARD, done.stdout + done.stderr
    doc = json.loads(done.stdout)  # stdout is the JSON document only: no annotations in it
    assert doc["findings"][0]["line"] == checked.line
    assert json.loads(side.read_text()) == doc
    assert summary.read_text().startswith("## ❌ Schema check failed (exit 3)")


# --- rendering details, no database ----------------------------------------------------------


def test_workflow_command_escaping():
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25"


def test_at_most_ten_annotations_most_severe_first():
    findings = [Finding(errors.UNAPPROVED_HAZARD, "hazard", "H", f"hazard {i}", "p.sql", i)
                for i in range(1, 12)]
    findings.append(Finding(errors.ERROR, "fork", "Fork", "fork!", "q.sql"))
    lines = annotations(check_document(CheckResult(findings=findings)))
    assert len(lines) == 10
    assert lines[0] == "::error file=q.sql,title=Fork::fork!"
    assert lines[1] == "::error file=p.sql,line=1,title=H::hazard 1"
    assert lines[-1] == ("::error title=More schema findings::3 more finding(s): see the job "
                         "log or step summary.")


def test_markdown_survives_backticks_pipes_and_size_limits():
    fp = "sha256:" + "a" * 64
    plans = [
        PlanCheck(f"schema/plans/{n}.sql", f"plan {n}", fp, fp, on_chain=True, replay="landed",
                  sql=f"select '```' || 'x{n}';\n" + "-- pad\n" * 200,
                  hazards=[HazardCheck("DELETES_DATA", "DELETES_DATA a|b", 3, False)])
        for n in (1, 2)
    ]
    doc = check_document(CheckResult(plans=plans))
    full = render_markdown(doc)
    assert "````sql\nselect '```' || 'x2';" in full  # the fence outgrows the backticks inside
    assert "`DELETES_DATA a\\|b`" in full  # a pipe cannot end the table cell
    short = render_markdown(doc, limit=len(full) - 100)
    assert "x2';" in short and "x1';" not in short  # the oldest plan's SQL goes first
    assert "SQL of `schema/plans/1.sql` left out for length" in short
