"""Expand now, contract at the next deploy (issue 11 item 2, the apply side).

Railway runs `invoke apply` (pre-deploy) while the previous code still serves. A two-part
plan's expand part runs in the deploy that meets it; its contract part in a later deploy
(another RAILWAY_DEPLOYMENT_ID), when the code that used what it drops is gone. Real
PostgreSQL, `invoke` run as a user would, each "deploy" a run with its own deployment id.
Plans are written by hand here (three real states, fingerprinted), like the planner would.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
from conftest import REPO, Databases, run_invoke
from test_apply import head, history, live_fingerprint

from deploy import urls
from deploy.applier import apply_plans
from deploy.config import load_config
from deploy.fingerprint import describe, fingerprint
from deploy.hazards import classify
from deploy.health import make_server
from deploy.plans import load_chain, parse_plan, render_plan
from deploy.reverse import reverse_path
from deploy.runner import plan_steps, run_steps

_numbers = itertools.count(1)
TOKEN = "contract-status-token"

ADD_SUMMARY = "ALTER TABLE public.decks ADD COLUMN summary text"
DROP_DESCRIPTION = "ALTER TABLE public.decks DROP COLUMN description"


# --- helpers --------------------------------------------------------------------------------


def _fingerprint(url: str, project: Path) -> str:
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        return fingerprint(describe(conn, load_config(project).exclusions))
    finally:
        conn.close()


def _run(url: str, sql: str, name: str) -> None:
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))
    try:
        run_steps(conn, plan_steps(sql, name), filename=name)
    finally:
        conn.close()


def _approved(text: str, hazards: list) -> str:
    """`text` with an approval line under its header for every hazard (a reviewer's work)."""
    if not hazards:
        return text
    header, _, rest = text.partition("\n\n")
    approvals = "\n".join(f"-- approve: {h.text} -- test" for h in hazards)
    return f"{header}\n{approvals}\n\n{rest}"


def add_two_part_plan(project: Path, pg: Databases, expand: str, contract: str, name: str,
                      *, reverse: str | None = None) -> Path:
    """Write a two-part plan on top of the project's head: `expanded` is what `expand` makes,
    `to` what `contract` makes after it; with `reverse`, also its reverse file (to -> from)."""
    config = load_config(project)
    url = pg.new("build2")
    apply_plans(config, target=url)
    from_fp = _fingerprint(url, project)
    if expand.strip():
        _run(url, expand, name)
    expanded_fp = _fingerprint(url, project)
    _run(url, contract, name)
    to_fp = _fingerprint(url, project)
    expand, contract = (part.strip().rstrip(";") + ";" if part.strip() else ""
                        for part in (expand, contract))
    # A block comment opens the body: a body that starts with `--` lines would read as header.
    body = (f"/* expand part: runs in the deploy that ships this plan */\n{expand}\n\n"
            f"-- phase: contract\n{contract}\n")
    hazards = classify(expand + "\n" + contract)
    text = render_plan(name, from_fp, to_fp, 15, hazards, body)
    text = text.replace(f"-- to:   {to_fp}\n", f"-- to:   {to_fp}\n-- expanded: {expanded_fp}\n")
    path = config.plans_dir / f"20990101T0000{next(_numbers):02d}Z_{name.replace(' ', '_')}.sql"
    path.write_text(_approved(text, hazards), encoding="utf-8")
    plan = parse_plan(path)
    assert plan.two_part and plan.expanded_fingerprint == expanded_fp
    if reverse is not None:
        back = render_plan(f"reverse of {name}", to_fp, from_fp, 15, classify(reverse), reverse)
        reverse_path(path).parent.mkdir(exist_ok=True)
        reverse_path(path).write_text(_approved(back, classify(reverse)), encoding="utf-8")
    return path


def add_one_part_plan(project: Path, pg: Databases, sql: str, name: str) -> Path:
    """A one-part plan on top of the project's head (which may be a two-part plan's `to`)."""
    config = load_config(project)
    url = pg.new("build1")
    apply_plans(config, target=url, force_contract=True)
    from_fp = _fingerprint(url, project)
    _run(url, sql, name)
    text = render_plan(name, from_fp, _fingerprint(url, project), 15, classify(sql), sql)
    path = config.plans_dir / f"20990101T0000{next(_numbers):02d}Z_{name.replace(' ', '_')}.sql"
    path.write_text(_approved(text, classify(sql)), encoding="utf-8")
    return path


def ids(deployment: str | None = None, commit: str = "") -> dict[str, str]:
    """Environment that makes `deployment` (else `commit`, else nothing) the deploy id, whatever
    the machine running the tests sets (GitHub Actions sets GITHUB_SHA)."""
    return {"RAILWAY_DEPLOYMENT_ID": deployment or "", "RAILWAY_GIT_COMMIT_SHA": "",
            "GITHUB_SHA": "", "GIT_COMMIT": commit}


def deploy(project: Path, url: str, deployment: str | None, *args: str,
           code: int = 0) -> str:
    """`invoke apply` as Railway's pre-deploy runs it for deployment `deployment`."""
    done = run_invoke(project, "apply", "--target", url, *args, env=ids(deployment))
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return done.stdout + done.stderr


def status(project: Path, url: str, code: int = 0) -> dict:
    done = run_invoke(project, "status", "--target", url, "--format", "json")
    assert done.returncode == code, done.stdout + done.stderr
    return json.loads(done.stdout)


def columns(pg: Databases, url: str, table: str = "decks") -> set[str]:
    return {r[0] for r in pg.query(
        url, "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = %s", (table,))}


def add_decks(pg: Databases, url: str, count: int = 5) -> list[tuple]:
    """Decks with descriptions (and their owner); returns (id, description) rows."""
    pg.execute(url, "INSERT INTO users (email, password_hash, display_name) "
                    "VALUES ('owner@example.org', 'x', 'owner')")
    for number in range(count):
        pg.execute(url, "INSERT INTO decks (owner_id, title, description) SELECT id, "
                        f"'deck {number}', 'about {number}' FROM users")
    return pg.query(url, "SELECT id::text, description FROM decks ORDER BY id")


def rows(pg: Databases, url: str, plan: Path) -> list[tuple]:
    """(part, status, deployment) of the plan's history rows, oldest first."""
    return [(r["part"], r["status"], r["deployment"]) for r in history(pg, url)
            if r["plan"] == plan.name]


@contextmanager
def health_server(project: Path, target: str) -> Iterator[str]:
    """/healthz and /status on a free port (port 0), served in a thread; yields the base URL."""
    server = make_server(load_config(project), 0, target=target, host="127.0.0.1", ttl=0.0,
                         quiet=True, token=TOKEN)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# --- the two deploys ------------------------------------------------------------------------


def test_expand_in_this_deploy_contract_in_the_next(
        pg: Databases, project: Path, tmp_path: Path) -> None:
    older = tmp_path / "older"
    shutil.copytree(project, older)  # the code still serving: its plans end at the plan's from
    url = pg.new("contract_flow")
    deploy(project, url, "deploy-1")
    decks = add_decks(pg, url)
    plan = add_two_part_plan(project, pg, ADD_SUMMARY, DROP_DESCRIPTION, "summary not description")

    out = deploy(project, url, "deploy-2")
    assert "expand part" in out and "Contract pending" in out and plan.name in out
    assert {"summary", "description"} <= columns(pg, url)  # the old code still reads it
    assert rows(pg, url, plan) == [("expand", "applied", "deploy-2"),
                                   ("contract", "deferred", "deploy-2")]

    # The new code: healthy, and told what is pending.
    found = status(project, url)
    assert found["state"] == "contract-pending" and found["exit_code"] == 0
    assert found["detail"] == f"contract pending: {plan.name}, runs at the next deploy"
    text = run_invoke(project, "status", "--target", url)
    assert text.returncode == 0 and "contract pending" in text.stdout, text.stdout
    with health_server(project, url) as base:
        assert get(base + "/healthz", TOKEN) == (
            200, f"ok: schema at head; contract pending: {plan.name}, runs at the next deploy\n")
        code, body = get(base + "/healthz")
        assert code == 200 and "contract pending" in body and plan.name not in body
    # The old code, still serving during the overlap: healthy too (ahead through history).
    old = status(older, url)
    assert old["state"] == "ahead" and old["exit_code"] == 0, old
    with health_server(older, url) as base:
        assert get(base + "/healthz")[0] == 200
    # Railway's Rollback button to the old code: the expand part only added, so it stays.
    assert "ahead" in deploy(older, url, "rollback-button")
    assert {"summary", "description"} <= columns(pg, url)
    # check --target places it too (read-only), not as drift.
    from deploy.checker import CheckResult, _check_target
    result = CheckResult()
    target = _check_target(load_config(project), load_chain(load_config(project).plans_dir),
                           url, None, load_config(project).exclusions, result, lambda _m: None)
    assert target.state == "pending" and target.pending == [plan.name]
    assert any("contract part is pending" in note for note in result.notes), result.notes

    # The same deployment again (a re-run): nothing runs.
    out = deploy(project, url, "deploy-2")
    assert "Contract pending" in out and "description" in columns(pg, url)
    assert len(rows(pg, url, plan)) == 2

    # The next deployment: the contract runs, the data it drops is kept.
    out = deploy(project, url, "deploy-3")
    assert "contract part" in out, out
    assert "description" not in columns(pg, url)
    assert live_fingerprint(project, url) == head(project)
    assert rows(pg, url, plan) == [("expand", "applied", "deploy-2"),
                                   ("contract", "deferred", "deploy-2"),
                                   ("contract", "applied", "deploy-3")]
    kept = pg.query(url, "SELECT row_data->>'id', row_data->>'description' "
                         "FROM schema_deploy.kept_data ORDER BY 1")
    assert sorted(kept) == sorted(decks)
    assert status(project, url)["state"] == "head"
    text = run_invoke(project, "status", "--target", url).stdout
    assert "(contract part)" in text and "(deploy deploy-3)" in text
    deploy(project, url, "deploy-4")  # up to date


def test_contract_flag_runs_the_contract_now(pg: Databases, project: Path) -> None:
    plan = add_two_part_plan(project, pg, ADD_SUMMARY, DROP_DESCRIPTION, "forced")
    url = pg.new("contract_force")
    dry = deploy(project, url, "d-1", "--dry-run")
    assert "would stop before the contract part" in dry and DROP_DESCRIPTION.lower() not in (
        dry.lower())
    out = deploy(project, url, "d-1", "--contract")  # both parts in one run
    assert "description" not in columns(pg, url)
    assert live_fingerprint(project, url) == head(project), out
    assert [r[:2] for r in rows(pg, url, plan)] == [("expand", "applied"),
                                                    ("contract", "applied")]

    other = pg.new("contract_force_later")
    deploy(project, other, "d-1")
    assert "description" in columns(pg, other)
    deploy(project, other, "d-1", "--contract")  # same deployment, forced
    assert "description" not in columns(pg, other)


def test_without_a_deployment_id_every_run_is_a_new_deploy(pg: Databases, project: Path) -> None:
    plan = add_two_part_plan(project, pg, ADD_SUMMARY, DROP_DESCRIPTION, "no id")
    url = pg.new("contract_noid")
    deploy(project, url, None)
    assert "description" in columns(pg, url)
    deploy(project, url, None)
    assert "description" not in columns(pg, url)
    assert [r[:2] for r in rows(pg, url, plan)][-1] == ("contract", "applied")


def test_the_git_commit_tells_deploys_apart_without_a_railway_id(
        pg: Databases, project: Path) -> None:
    plan = add_two_part_plan(project, pg, ADD_SUMMARY, DROP_DESCRIPTION, "by commit")
    url = pg.new("contract_sha")
    for sha, kept in (("1111111", True), ("1111111", True), ("2222222", False)):
        done = run_invoke(project, "apply", "--target", url, env=ids(commit=sha))
        assert done.returncode == 0, done.stdout + done.stderr
        assert ("description" in columns(pg, url)) is kept, sha
    assert [(r["part"], r["status"], r["git_sha"]) for r in history(pg, url)
            if r["plan"] == plan.name] == [("expand", "applied", "1111111"),
                                           ("contract", "deferred", "1111111"),
                                           ("contract", "applied", "2222222")]


def test_a_plan_that_only_drops_keeps_the_column_until_the_next_deploy(
        pg: Databases, project: Path, tmp_path: Path) -> None:
    older = tmp_path / "older"
    shutil.copytree(project, older)
    url = pg.new("contract_drop_only")
    deploy(project, url, "a")
    decks = add_decks(pg, url, 3)
    # A history table made before parts existed: upgraded in place by the next apply.
    pg.execute(url, "ALTER TABLE schema_deploy.history DROP COLUMN part")
    assert status(project, url)["state"] == "head"
    plan = add_two_part_plan(project, pg, "", DROP_DESCRIPTION, "drop description",
                             reverse="ALTER TABLE public.decks ADD COLUMN description text")
    # Its expand part is empty: `expanded` is `from`, and only history tells them apart.
    assert status(project, url, code=2)["pending"] == [plan.name]

    deploy(project, url, "b")
    assert "description" in columns(pg, url)
    found = status(project, url)
    assert found["state"] == "contract-pending", found
    assert status(older, url)["state"] == "head"  # the old code's head is this very schema

    # Rolling back the expand part alone has no reviewed way: refused, with what to do.
    done = run_invoke(project, "rollback", "--target", url)
    assert done.returncode == 1 and "invoke apply --contract" in done.stdout + done.stderr, (
        done.stdout + done.stderr)
    assert "Traceback" not in done.stdout + done.stderr

    deploy(project, url, "c")
    assert "description" not in columns(pg, url)
    # After the contract, rollback undoes the whole plan and restores the kept values.
    done = run_invoke(project, "rollback", "--target", url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert pg.query(url, "SELECT id::text, description FROM decks ORDER BY id") == decks
    assert status(project, url, code=2)["pending"] == [plan.name]


def test_a_plan_behind_a_pending_contract_waits_with_exit_2(
        pg: Databases, project: Path, tmp_path: Path) -> None:
    url = pg.new("contract_waits")
    deploy(project, url, "d1")
    only_first = tmp_path / "first"
    two_part = add_two_part_plan(project, pg, ADD_SUMMARY, DROP_DESCRIPTION, "replace text")
    shutil.copytree(project, only_first)  # a commit whose plans end at the two-part plan
    later = add_one_part_plan(project, pg, "ALTER TABLE public.decks ADD COLUMN level integer",
                              "add level")

    out = deploy(project, url, "d2", code=2)
    assert f"{later.name} wait(s) behind the contract part of {two_part.name}" in out
    assert "invoke apply --contract" in out and "exits 2" in out
    assert "summary" in columns(pg, url) and "description" in columns(pg, url)
    found = status(project, url, code=2)
    assert found["state"] == "pending" and "wait(s) behind" in found["detail"]
    with health_server(project, url) as base:
        code, body = get(base + "/healthz")
        assert code == 503 and "contract" in body

    # d2 never went live (its apply failed): a retry must not drop what the old code uses.
    deploy(project, url, "d3", code=2)
    assert "description" in columns(pg, url)
    # The commit that ends at the two-part plan goes live with the contract pending...
    deploy(only_first, url, "d4")
    # ... and the deploy after it runs the contract and the plan that waited.
    deploy(project, url, "d5")
    assert "description" not in columns(pg, url) and "level" in columns(pg, url)
    assert live_fingerprint(project, url) == head(project)


# --- kills at every step boundary of both parts -----------------------------------------------

_EXPAND = [
    "ALTER TABLE public.decks ADD COLUMN note text",
    "CREATE INDEX CONCURRENTLY ix_decks_note ON public.decks (note)",
    "COMMENT ON COLUMN public.decks.note IS 'a note'",
]
_CONTRACT = [
    "DROP INDEX CONCURRENTLY public.ix_deck_subscriptions_deck_id",
    "ALTER TABLE public.decks DROP COLUMN description",
    "CREATE INDEX CONCURRENTLY ix_decks_note_id ON public.decks (note, id)",
]

# apply in a process of its own, SIGKILLed right after the n-th statement returned
# ("statement") or after the n-th step and its bookkeeping committed ("step"); counts run
# over the whole run (both parts).
_KILLER = textwrap.dedent("""
    import os, signal, sys
    from deploy import applier, runner
    from deploy.config import load_config

    mode, number, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    done = [0]
    if mode == "statement":
        original = runner._execute

        def execute(cur, statement, filename):
            original(cur, statement, filename)
            done[0] += 1
            if done[0] == number:
                os.kill(os.getpid(), signal.SIGKILL)

        runner._execute = execute
    else:
        original_step = applier._Run._run_step

        def run_step(self, conn, plan, steps, index, before_commit):
            original_step(self, conn, plan, steps, index, before_commit)
            done[0] += 1
            if done[0] == number:
                os.kill(os.getpid(), signal.SIGKILL)

        applier._Run._run_step = run_step
    applier.apply_plans(load_config(), target=target)
""")


def _copy(pg: Databases, name: str, template: str | None) -> str:
    url = pg.server.create_database(name, template=template)
    return urls.sqlalchemy_url(url).replace("postgresql+psycopg2://", "postgresql://", 1)


def _kill(project: Path, url: str, deployment: str, mode: str, point: int) -> None:
    killer = project / "killer.py"
    killer.write_text(_KILLER)
    env = {**os.environ, "PYTHONPATH": str(REPO), **ids(deployment)}
    env.pop("DATABASE_URL", None)
    proc = subprocess.run([sys.executable, str(killer), mode, str(point), url], cwd=project,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (mode, point, proc.stderr)


def test_a_kill_at_every_step_boundary_of_either_part_resumes(
        pg: Databases, project: Path) -> None:
    base = "ckill_from"  # at the plan's `from`: the committed plans applied
    deploy(project, _copy(pg, base, None), "before")
    plan = add_two_part_plan(project, pg, ";\n".join(_EXPAND) + ";",
                             ";\n".join(_CONTRACT) + ";", "kill parts")
    expanded = parse_plan(plan).expanded_fingerprint
    mid = "ckill_expanded"
    mid_url = _copy(pg, mid, base)
    deploy(project, mid_url, "first")  # expand part, contract pending (deferred by "first")
    assert live_fingerprint(project, mid_url) == expanded

    # The expand part (3 statements, 3 steps; killing after its last step is the kill
    # between the parts): a re-run in the same deploy finishes it and leaves the contract.
    points = [("statement", n) for n in range(1, 4)] + [("step", n) for n in range(1, 4)]
    for number, (mode, point) in enumerate(points):
        url = _copy(pg, f"ckill_e{number}", base)
        _kill(project, url, "first", mode, point)
        label = f"expand part, killed after {mode} {point}"
        out = deploy(project, url, "first")
        assert "Contract pending" in out, (label, out)
        assert live_fingerprint(project, url) == expanded, label
        assert status(project, url)["state"] == "contract-pending", label
        deploy(project, url, "second")
        assert live_fingerprint(project, url) == head(project), label
        parts = [r[:2] for r in rows(pg, url, plan)]
        assert parts[-1] == ("contract", "applied"), (label, parts)

    # The contract part, run by the next deploy and killed: a re-run finishes it. (4
    # statements: keeping the dropped column's data is one more, in the drop's transaction.)
    points = [("statement", n) for n in range(1, 5)] + [("step", n) for n in range(1, 4)]
    for number, (mode, point) in enumerate(points):
        url = _copy(pg, f"ckill_c{number}", mid)
        _kill(project, url, "second", mode, point)
        label = f"contract part, killed after {mode} {point}"
        deploy(project, url, "second")
        assert live_fingerprint(project, url) == head(project), label
        assert status(project, url)["state"] == "head", label
        statuses = [r[:2] for r in rows(pg, url, plan)]
        assert statuses[-1] == ("contract", "applied"), (label, statuses)
        assert "description" not in columns(pg, url), label
