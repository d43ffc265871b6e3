"""The plan/check cache (deploy.cache): an unchanged project needs no scratch server, and any
change, corruption or stale entry is recomputed — the answer never differs from a cold run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import cache
from deploy.checker import run_check
from deploy.config import load_config
from deploy.desired import load_desired
from deploy.fingerprint import fingerprint
from deploy.planner import make_plan
from tests.conftest import run_invoke
from tests.test_plan import add_archived_at

SERVER_STARTED = "ready in"  # the scratch server's progress line
CACHE_USED = "no scratch server needed"


class Progress:
    """Collects progress lines; knows whether a scratch server was started."""

    def __init__(self) -> None:
        self.lines: list[str] = []  # not a list subclass: `if progress:` must stay true

    def __call__(self, message: str) -> None:
        self.lines.append(message)

    @property
    def started_server(self) -> bool:
        return any(SERVER_STARTED in line for line in self.lines)

    @property
    def used_cache(self) -> bool:
        return any(CACHE_USED in line for line in self.lines)


def plan_check(project: Path, **kwargs: object) -> tuple[object, Progress]:
    progress = Progress()
    result = make_plan(load_config(project), scratch="local", check=True, progress=progress,
                       **kwargs)
    return result, progress


def entries(folder: Path, kind: str) -> list[Path]:
    return sorted((folder / f"v{cache.FORMAT}" / kind).glob("*.json"))


def payload(entry_text: str) -> object:
    header, _, body = entry_text.partition("\n")
    assert json.loads(header)["format"] == cache.FORMAT
    return json.loads(body)


def plan_file(project: Path) -> Path:
    return next((project / "schema" / "plans").glob("*.sql"))


# --- whole commands --------------------------------------------------------------------------


def test_second_noop_plan_starts_no_scratch_server_and_gives_the_same_answer(project):
    first = run_invoke(project, "plan")
    second = run_invoke(project, "plan")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert SERVER_STARTED in first.stderr and CACHE_USED not in first.stderr
    assert SERVER_STARTED not in second.stderr and CACHE_USED in second.stderr
    assert second.stdout == first.stdout
    # Without the cache the same command builds everything again.
    third = run_invoke(project, "plan", "--no-cache")
    assert third.returncode == 0 and SERVER_STARTED in third.stderr
    assert third.stdout == first.stdout


def test_second_check_starts_no_scratch_server_and_gives_the_same_answer(project):
    first = run_invoke(project, "check", "--format", "json")
    second = run_invoke(project, "check", "--format", "json")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert SERVER_STARTED in first.stderr
    assert SERVER_STARTED not in second.stderr and CACHE_USED in second.stderr
    cold, warm = json.loads(first.stdout), json.loads(second.stdout)
    cold.pop("seconds", None), warm.pop("seconds", None)
    assert warm == cold
    third = run_invoke(project, "check", "--no-cache")
    assert third.returncode == 0 and SERVER_STARTED in third.stderr


# --- invalidation: each change is recomputed -------------------------------------------------


def test_a_model_change_is_recomputed(project):
    cold, _ = plan_check(project)
    assert cold.status == "up-to-date"
    add_archived_at(project)
    changed, progress = plan_check(project)
    assert progress.started_server and not progress.used_cache
    assert changed.status == "pending" and "archived_at" in changed.sql


def test_a_changed_plan_byte_is_recomputed(project, private_cache):
    plan_check(project)
    _, warm = plan_check(project)
    assert warm.used_cache
    path = plan_file(project)
    path.write_bytes(path.read_bytes() + b"-- a reviewer's note\n")
    again, progress = plan_check(project)
    assert progress.started_server and not progress.used_cache
    assert again.status == "up-to-date"
    assert len(entries(private_cache, "head")) == 2  # one per plan-files state


def test_an_edited_plan_that_no_longer_lands_fails_check_despite_the_cache(project):
    config = load_config(project)
    assert run_check(config, scratch="local").exit_code == 0
    warm = Progress()
    assert run_check(config, scratch="local", progress=warm).exit_code == 0 and warm.used_cache
    path = plan_file(project)
    path.write_text(path.read_text() + "\nCREATE TABLE sneaky (id int);\n")
    progress = Progress()
    result = run_check(config, scratch="local", progress=progress)
    assert progress.started_server
    assert result.exit_code == 1
    assert any(f.kind == "replay" for f in result.findings)


def test_a_changed_sql_file_is_recomputed(project):
    plan_check(project)
    view = project / "schema" / "sql" / "10_due_cards_view.sql"
    view.write_text(view.read_text() + "\n-- a trailing note changes the bytes, not the schema\n")
    same, progress = plan_check(project)
    assert progress.started_server and same.status == "up-to-date"
    view.write_text(view.read_text().replace("f.hint,\n", ""))
    changed, progress = plan_check(project)
    assert progress.started_server and changed.status == "pending"
    assert "due_cards" in changed.sql


def test_a_corrupted_entry_is_ignored_and_rewritten(project, private_cache):
    cold, _ = plan_check(project)
    [desired] = entries(private_cache, "desired")
    text = desired.read_text()
    # Flip one character of the payload: valid JSON, wrong checksum.
    desired.write_text(text.replace("sha256:", "sha256:0", 1))
    again, progress = plan_check(project)
    assert progress.started_server and again.status == cold.status == "up-to-date"
    # Rewritten by the recomputation: one header line, then the payload.
    assert payload(desired.read_text()) == payload(text)
    desired.write_text(text[: len(text) // 2])  # truncated: not JSON at all
    again, progress = plan_check(project)
    assert progress.started_server and again.status == "up-to-date"
    _, progress = plan_check(project)
    assert progress.used_cache


def test_an_entry_under_another_key_is_ignored(project, private_cache):
    """A stale entry (the up-to-date models' state) copied to the changed models' key."""
    plan_check(project)
    [old] = entries(private_cache, "desired")
    add_archived_at(project)
    config = load_config(project)
    new_key = cache.desired_key(config, load_desired(config))
    assert new_key != old.stem
    (old.parent / f"{new_key}.json").write_text(old.read_text())
    changed, progress = plan_check(project)
    assert progress.started_server and changed.status == "pending"


def test_a_checksum_matching_entry_whose_description_lies_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path))
    description = {"table public.t": "kind=r"}
    cache.store("head", "k" * 64, cache.Known(fingerprint(description), description))
    assert cache.load("head", "k" * 64) == cache.Known(fingerprint(description), description)
    lie = cache.Known(fingerprint({}), description)  # a fingerprint of another state
    cache.store("head", "l" * 64, lie)
    assert cache.load("head", "l" * 64) is None
    assert not (tmp_path / f"v{cache.FORMAT}" / "head" / f"{'l' * 64}.json").exists()


def test_writes_are_atomic_and_old_entries_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path))
    for number in range(cache.KEEP + 5):
        cache.store("head", f"{number:064d}", cache.Known(fingerprint({}), {}))
    folder = tmp_path / f"v{cache.FORMAT}" / "head"
    assert len(list(folder.glob("*.json"))) == cache.KEEP
    assert not list(folder.glob(".tmp-*"))  # no half-written files left behind


def test_the_cache_dir_follows_xdg_and_the_override(tmp_path, monkeypatch):
    monkeypatch.delenv(cache.ENV_DIR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "schema-deploy"
    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path / "mine"))
    assert cache.cache_dir() == tmp_path / "mine"


def test_the_models_key_is_stable_across_processes_and_follows_the_models(project):
    """create_all emits a table's indexes in set (hash) order; the key must not follow it."""
    code = (
        "from deploy import cache; from deploy.config import load_config; "
        "from deploy.desired import load_desired; c = load_config('.'); "
        "print(cache.desired_key(c, load_desired(c)))"
    )
    keys = set()
    for seed in ("1", "2", "3"):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=project, capture_output=True, text=True,
            env={**os.environ, "PYTHONHASHSEED": seed,
                 "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
        assert out.returncode == 0, out.stderr
        keys.add(out.stdout.strip())
    assert len(keys) == 1
    add_archived_at(project)
    config = load_config(project)
    assert cache.desired_key(config, load_desired(config)) not in keys


def test_the_models_are_imported_once_per_command(project):
    marker = project / "imports.log"
    init = project / "schema" / "__init__.py"
    init.write_text(
        f"with open({str(marker)!r}, 'a') as _log:\n    _log.write('imported\\n')\n"
        + init.read_text()
    )
    load_desired(load_config(project))
    assert marker.read_text().count("imported") == 1


def test_the_ci_workflow_restores_and_saves_the_cache():
    import yaml

    workflow = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "schema.yml"
    steps = yaml.safe_load(workflow.read_text())["jobs"]["check"]["steps"]
    names = [s.get("uses", "") for s in steps]
    check = next(i for i, s in enumerate(steps) if "invoke check" in s.get("run", ""))
    restore = names.index("actions/cache/restore@v4")
    save = names.index("actions/cache/save@v4")
    assert restore < check < save
    for index in (restore, save):
        assert steps[index]["with"]["path"] == "~/.cache/schema-deploy"
    assert "always()" in steps[save]["if"]


def test_hazards_of_an_unchanged_plan_are_classified_once(private_cache, monkeypatch):
    from deploy import hazards as hazards_module
    from deploy.statements import StatementError

    calls: list[str] = []
    real = hazards_module.classify

    def counting(sql: str, **kwargs: object) -> list:
        calls.append(sql)
        return real(sql, **kwargs)

    monkeypatch.setattr(hazards_module, "classify", counting)
    body = "\n\nALTER TABLE users DROP COLUMN legacy;\nCREATE INDEX ix ON users (email);\n"
    first = cache.classify(body)
    assert first and first == cache.classify(body) == real(body)
    assert len(calls) == 1
    assert cache.classify(body, use_cache=False) == first and len(calls) == 2
    [entry] = entries(private_cache, "hazards")
    entry.write_text(entry.read_text().replace("DELETES_DATA", "NOTHING_HERE"))
    assert cache.classify(body) == first and len(calls) == 3  # corrupted: recomputed
    # An edit is a new text: classified again.
    assert cache.classify(body + "-- note\n") == first and len(calls) == 4
    with pytest.raises(StatementError):
        cache.classify("ALTER TABLE users DROP COLUMN;")
    with pytest.raises(StatementError):
        cache.classify("ALTER TABLE users DROP COLUMN;")
    assert len(entries(private_cache, "hazards")) == 2  # failures are never stored


def test_a_sql_file_edited_while_the_models_are_built_is_not_cached(project, private_cache):
    config = load_config(project)
    desired = load_desired(config)
    memo = cache.Memo(config, desired, [], lambda _msg: None)
    view = project / "schema" / "sql" / "10_due_cards_view.sql"
    view.write_text(view.read_text() + "\n-- edited during the build\n")
    memo.save_desired({}, "")
    assert entries(private_cache, "desired") == []
    view.write_text(view.read_text().replace("\n-- edited during the build\n", ""))
    memo.save_desired({}, "")
    assert len(entries(private_cache, "desired")) == 1


def test_the_snapshot_is_still_checked_and_written_on_a_cache_hit(project):
    config = load_config(project)
    assert run_check(config, scratch="local").exit_code == 0
    (project / "schema" / "schema.sql").unlink()
    progress = Progress()
    result = run_check(config, scratch="local", progress=progress)
    assert progress.used_cache and not progress.started_server
    assert result.exit_code == 4
    assert [f.kind for f in result.findings] == ["snapshot"]
    written, progress = plan_check(project)
    assert progress.used_cache and written.status == "up-to-date"
    assert not (project / "schema" / "schema.sql").exists()  # --check writes nothing
    progress = Progress()
    result = make_plan(config, scratch="local", progress=progress)
    assert progress.used_cache and result.snapshot_written
    assert run_check(config, scratch="local", use_cache=False).exit_code == 0


MODELS_REUSED = "instead of building them"


def test_a_new_plan_with_unchanged_models_replays_but_does_not_build_the_models(
    empty_project,
):
    """`plan` writes a plan (models cached); the next plan/check only replays the new plan."""
    config = load_config(empty_project)
    written = make_plan(config, name="initial", scratch="local")
    assert written.status == "written"
    path = plan_file(empty_project)
    path.write_bytes(path.read_bytes() + b"-- reviewed\n")  # not the bytes the plan proved
    again, progress = plan_check(empty_project)
    assert again.status == "up-to-date"
    assert progress.started_server and any("replaying plan 1/1" in m for m in progress.lines)
    assert any(MODELS_REUSED in m for m in progress.lines)
    assert not any("building the desired schema" in m for m in progress.lines)
    # check: same shortcut, and the same findings as a check that builds everything.
    (empty_project / "schema" / "plans" / "extra.txt").write_text("not a plan")
    path.write_bytes(path.read_bytes() + b"-- reviewed\n")  # new plan bytes, same schema
    progress = Progress()
    warm = run_check(config, scratch="local", progress=progress)
    assert any(MODELS_REUSED in m for m in progress.lines)
    assert not any("building the desired schema" in m for m in progress.lines)
    cold = run_check(config, scratch="local", use_cache=False)
    assert warm.exit_code == cold.exit_code == 0
    assert warm.models == cold.models and warm.findings == cold.findings


def test_changed_models_with_a_cached_head_still_build_and_diff(project):
    plan_check(project)
    add_archived_at(project)
    changed, progress = plan_check(project)
    assert changed.status == "pending" and not any(MODELS_REUSED in m for m in progress.lines)


def test_check_target_on_a_cache_hit_names_the_same_drift(project, pg):
    config = load_config(project)
    url = pg.new("staging")
    pg.execute(url, plan_file(project).read_text())
    pg.execute(url, "create table public.hotfix (id int)")
    cold = run_check(config, scratch="local", target=url, use_cache=False)
    run_check(config, scratch="local")  # fills the cache
    progress = Progress()
    warm = run_check(config, scratch="local", target=url, progress=progress)
    assert progress.used_cache and not progress.started_server
    assert warm.target == cold.target and warm.target.state == "drift"
    assert any("hotfix" in d for d in warm.target.differences)
    assert warm.findings == cold.findings and warm.exit_code == cold.exit_code


def test_gc_is_paused_only_inside_the_block():
    import gc

    from deploy.desired import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()


# --- the engine's part of every key ----------------------------------------------------------

ENGINE = Path(cache.__file__).resolve().parent


def engine_copy(tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "deploy"
    shutil.copytree(ENGINE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def edit(path: Path, text: str = "\n# edited\n") -> None:
    path.write_text(path.read_text() + text)


def test_editing_a_module_that_computes_no_cached_answer_keeps_the_engine_key(tmp_path):
    copy = engine_copy(tmp_path)
    before = cache.source_digest(copy)
    status = copy / "status.py"
    status.write_text(status.read_text().replace('"""', '"""Reworded: ', 1))
    edit(copy / "report.py")
    assert cache.source_digest(copy) == before
    edit(copy / "fingerprint.py")
    assert cache.source_digest(copy) != before


@pytest.mark.parametrize("statement", ["from deploy.helper import X",
                                       "from ...helper import X"])
def test_a_new_module_imported_where_answers_are_computed_is_in_the_engine_key(
    tmp_path, statement
):
    copy = engine_copy(tmp_path)
    helper = copy / "helper.py"
    helper.write_text("X = 1\n")
    alone = cache.source_digest(copy)
    helper.write_text("X = 2\n")
    assert cache.source_digest(copy) == alone  # nothing imports it
    # Imported inside a function of a differ repair (relative or absolute).
    edit(copy / "differ" / "repairs" / "identity.py",
         f"\n\ndef _later() -> int:\n    {statement}\n    return X\n")
    imported = cache.source_digest(copy)
    helper.write_text("X = 3\n")
    assert cache.source_digest(copy) != imported


def test_the_modules_behind_cached_answers_are_found_from_the_imports():
    files = cache._package_files(ENGINE)
    modules = cache.answer_modules("deploy", {m: data for _, m, data in files if m})
    assert {"deploy", "deploy.cache", "deploy.planner", "deploy.checker", "deploy.reverse",
            "deploy.desired", "deploy.fingerprint", "deploy.viewdef", "deploy.proof",
            "deploy.runner", "deploy.statements", "deploy.hazards", "deploy.hazards.core",
            "deploy.hazards.sequence", "deploy.differ.repairs.identity"} <= modules
    assert not {"deploy.status", "deploy.report", "deploy.cli", "deploy.health"} & modules


def test_the_engine_key_is_remembered_by_the_whole_trees_bytes(tmp_path, private_cache,
                                                                monkeypatch):
    copy = engine_copy(tmp_path)
    first = cache._engine_digest(copy)
    assert first == cache.source_digest(copy) and len(entries(private_cache, "engine")) == 1
    calls: list[object] = []
    monkeypatch.setattr(cache, "source_digest", lambda *args: calls.append(args) or "again")
    assert cache._engine_digest(copy) == first and calls == []  # read, not computed
    edit(copy / "status.py")
    assert cache._engine_digest(copy) == "again"  # another tree: computed again


def test_check_right_after_plan_answers_from_the_plans_proof(empty_project, private_cache):
    """`plan` records what it proved (the new chain lands on the models, the reverse lands,
    the hazards): the next `check` starts no scratch server and gives a cold check's answer;
    a changed plan byte is replayed again."""
    from deploy import hazards as hazards_module
    from deploy.plans import load_chain

    config = load_config(empty_project)
    written = make_plan(config, name="initial", scratch="local")
    assert written.status == "written" and written.reverse_path is not None
    progress = Progress()
    warm = run_check(config, scratch="local", progress=progress)
    assert progress.used_cache and not progress.started_server
    cold = run_check(config, scratch="local", use_cache=False)
    assert warm.exit_code == cold.exit_code
    assert warm.findings == cold.findings and warm.notes == cold.notes
    assert (warm.head, warm.models) == (cold.head, cold.models) == (written.to_fingerprint,) * 2
    assert warm.plans == cold.plans  # each plan landed, same hazards and approvals
    plan = load_chain(config.plans_dir).chain[-1]
    assert cache.classify(plan.body) == hazards_module.classify(plan.body)
    # One byte more: the recorded proof is for other bytes, so check replays the plan.
    plan.path.write_bytes(plan.path.read_bytes() + b"-- reviewed\n")
    progress = Progress()
    again = run_check(config, scratch="local", progress=progress)
    assert progress.started_server and any("replaying plan 1/1" in m for m in progress.lines)
    assert again.exit_code == cold.exit_code and again.findings == cold.findings


def test_plan_records_no_proof_without_the_cache(empty_project, private_cache):
    """--no-cache: the plan writes nothing into the cache; check replays."""
    config = load_config(empty_project)
    assert make_plan(config, name="initial", scratch="local", use_cache=False).status == "written"
    assert entries(private_cache, "head") == entries(private_cache, "reverses") == []
    progress = Progress()
    assert run_check(config, scratch="local", progress=progress).exit_code == 0
    assert progress.started_server
