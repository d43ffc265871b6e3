"""`invoke check`, the CI gate: drift, replay, forks, hazards and --target, on real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_invoke

from deploy import errors
from deploy.check_report import check_document, render_text
from deploy.checker import CheckResult, Finding, run_check
from deploy.config import load_config
from deploy.planner import make_plan

DECK_DESCRIPTION = "    description: Mapped[str | None] = mapped_column(Text)\n"
DECK_SUMMARY = "    summary: Mapped[str | None] = mapped_column(Text)\n"
DECK_LANGUAGE = "    language: Mapped[str | None] = mapped_column(Text)\n"
DROP_DESCRIPTION = 'alter table "public"."decks" drop column "description";'


def edit_models(project: Path, old: str, new: str) -> None:
    """Change the copied project's models like a developer would."""
    path = project / "schema" / "models.py"
    text = path.read_text()
    assert old in text, f"models.py no longer contains {old!r}"
    path.write_text(text.replace(old, new, 1))


def check(project: Path, *args: str, env: dict[str, str] | None = None):
    """`invoke check --scratch local ARGS` in the project, as a user runs it."""
    return run_invoke(project, "check", "--scratch", "local", *args, env=env)


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line of `path` containing `needle`."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def approve_all(plan: Path) -> None:
    """What a reviewer does: copy each hazard line as an approve line with a reason."""
    lines = plan.read_text().split("\n")
    approvals = [line.replace("-- hazard:", "-- approve:", 1) + " -- reviewed in the PR"
                 for line in lines if line.startswith("-- hazard:")]
    assert approvals, "the plan has no hazard lines to approve"
    plan.write_text("\n".join(lines[:4] + approvals + lines[4:]))


def test_clean_repository_passes(project):
    done = check(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Schema check passed" in done.stdout
    assert "landed" in done.stdout and "_initial_schema.sql" in done.stdout


def test_dropped_column_drift_then_unapproved_hazard_then_approved(project):
    """The issue's definition of done, step by step, through the command line."""
    edit_models(project, DECK_DESCRIPTION, "")
    done = check(project)
    assert done.returncode == errors.DRIFT, done.stdout + done.stderr
    assert "Unreviewed drift" in done.stdout
    assert DROP_DESCRIPTION in done.stdout  # the SQL from head to models
    assert "invoke plan" in done.stdout

    result = make_plan(load_config(project), name="drop deck description", scratch="local")
    plan = result.plan_path
    assert plan is not None
    rel = f"schema/plans/{plan.name}"
    line = line_of(plan, DROP_DESCRIPTION)
    done = check(project, env={"GITHUB_ACTIONS": "true"})
    assert done.returncode == errors.UNAPPROVED_HAZARD, done.stdout + done.stderr
    assert f'{rel}:{line}: DELETES_DATA drop column "public"."decks"."description"' in done.stdout
    assert (f"::error file={rel},line={line},title=Unapproved hazard%3A DELETES_DATA::"
            in done.stdout)
    assert '-- approve: DELETES_DATA drop column "public"."decks"."description"' in done.stdout

    approve_all(plan)
    # The header's own hazard lines are only a courtesy: approvals are matched to the body.
    plan.write_text("\n".join(line for line in plan.read_text().split("\n")
                              if not line.startswith("-- hazard:")))
    done = check(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Schema check passed" in done.stdout


def test_hand_edited_plan_that_misses_its_to_fails_naming_the_file(project):
    plans = project / "schema" / "plans"
    initial = next(plans.glob("*_initial_schema.sql"))
    text = initial.read_text()
    old = '"response_ms" integer,'
    assert old in text
    initial.write_text(text.replace(old, '"response_ms" bigint,', 1))
    # Everything known is reported at once: the plan that misses its 'to', the damaged file
    # next to it. The hand-edited snapshot is not judged while a plan cannot be read (the
    # head is unknown, and `invoke plan` would refuse anyway).
    (plans / "20991231T000000Z_damaged.sql").write_text("-- plan: damaged\nselect 1;\n")
    snapshot = project / "schema" / "schema.sql"
    snapshot.write_text(snapshot.read_text() + "-- a hand edit\n")

    done = check(project, "--format", "json")
    assert done.returncode == errors.ERROR, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["exit_code"] == errors.ERROR and doc["status"] == "failed"
    replay = [f for f in doc["findings"] if f["kind"] == "replay"]
    assert len(replay) == 1 and replay[0]["file"] == f"schema/plans/{initial.name}"
    assert initial.name in replay[0]["message"]
    assert "does not land on its 'to'" in replay[0]["message"]
    damaged = [f for f in doc["findings"] if f["kind"] == "damaged"]
    assert [f["file"] for f in damaged] == ["schema/plans/20991231T000000Z_damaged.sql"]
    assert "'-- from:' line is missing" in damaged[0]["message"]
    assert not [f for f in doc["findings"] if f["kind"] in ("snapshot", "drift", "orphan")]
    assert any("20991231T000000Z_damaged.sql cannot be read" in n for n in doc["notes"])
    assert doc["counts"] == {"errors": 2, "drift": 0, "unapproved_hazards": 0}
    states = {p["file"].rsplit("/", 1)[-1]: p["replay"] for p in doc["plans"]}
    assert states == {initial.name: "failed", "20991231T000000Z_damaged.sql": "damaged"}


def test_fork_from_two_branches_is_reported_and_both_plans_replayed(project):
    config = load_config(project)
    # Branch one adds deck summaries; branch two, written without it, deck languages.
    edit_models(project, DECK_DESCRIPTION, DECK_DESCRIPTION + DECK_SUMMARY)
    first = make_plan(config, name="deck summary", scratch="local").plan_path
    assert first is not None
    first_text = first.read_text()
    first.unlink()
    edit_models(project, DECK_SUMMARY, DECK_LANGUAGE)
    second = make_plan(config, name="deck language", scratch="local").plan_path
    assert second is not None
    first = first.with_name("20000101T000000Z_deck_summary.sql")  # distinct name, same content
    first.write_text(first_text)

    result = run_check(config, scratch="local")
    assert result.exit_code == errors.ERROR
    assert [f.kind for f in result.findings] == ["fork"]
    text = "\n".join(render_text(check_document(result), lambda t, _c: t))
    assert "Fork: 2 plans start from the same schema" in text
    assert first.name in text and second.name in text
    assert "delete the other(s), then run `invoke plan`" in text
    states = {Path(p.file).name: p.replay for p in result.plans}
    assert states[first.name] == states[second.name] == "landed"
    assert any(second.name in note for note in result.notes)  # the models match branch two


def test_target_pending_at_head_and_drift(project, pg):
    config = load_config(project)
    url = pg.new("staging")
    result = run_check(config, scratch="local", target=url)
    assert result.target is not None and result.target.state == "pending"
    assert [Path(p).name for p in result.target.pending][0].endswith("_initial_schema.sql")
    assert result.exit_code == errors.OK

    plan = next((project / "schema" / "plans").glob("*.sql"))
    pg.execute(url, plan.read_text())
    pg.execute(url, "create table public.hotfix (id int)")
    done = check(project, "--target", url)
    assert done.returncode == errors.DRIFT, done.stdout + done.stderr
    assert "matches no state of the plans" in done.stdout
    assert "hotfix" in done.stdout  # the differing object is named


def test_exit_code_is_the_most_severe_finding():
    def result(*severities: int) -> CheckResult:
        return CheckResult(findings=[Finding(s, "x", "t", "m") for s in severities])

    assert result().exit_code == errors.OK
    assert result(errors.UNAPPROVED_HAZARD).exit_code == errors.UNAPPROVED_HAZARD
    assert result(errors.UNAPPROVED_HAZARD, errors.DRIFT).exit_code == errors.DRIFT
    assert result(errors.DRIFT, errors.ERROR, errors.UNAPPROVED_HAZARD).exit_code == errors.ERROR
    ordered = result(errors.UNAPPROVED_HAZARD, errors.DRIFT, errors.ERROR).ordered_findings()
    assert [f.severity for f in ordered] == [errors.ERROR, errors.DRIFT, errors.UNAPPROVED_HAZARD]
