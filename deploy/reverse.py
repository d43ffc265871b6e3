"""Reverse plans: for every plan (from -> to), the reviewed SQL that takes `to` back to `from`.

Layout: the reverse of `schema/plans/<name>.sql` is `schema/plans/reverse/<name>.sql`, a plan
file with the same header (its `from` is the forward plan's `to` and vice versa), its own
hazard and approval lines. `load_plans` reads only `plans/*.sql`, so reverses never enter the
plan graph. A reverse is generated through the same differ (models' state -> base state) and
proven the same way: applied to a copy of the forward plan's `to`, it must land on `from`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deploy import hazards  # its rules load on first use (deploy/hazards/__init__.py)
from deploy.background import Background
from deploy.config import Config
from deploy.errors import DeployError
from deploy.fingerprint import Description, Difference, Exclusions, fingerprint
from deploy.plans import Plan, parse_plan, render_plan
from deploy.statements import parse as parse_statements

if TYPE_CHECKING:  # the differ (migra) and scratch servers stay off the apply path
    from sqlalchemy.engine import URL

    from deploy.differ import Side
    from deploy.renames import Rename
    from deploy.scratch import ScratchServer

Progress = Callable[[str], None]
REVERSE_DIR = "reverse"
_MAX_ROUNDS = 3


def reverse_path(plan_path: Path) -> Path:
    """Where the reverse of the plan at `plan_path` lives: `<plans>/reverse/<same name>`."""
    return plan_path.parent / REVERSE_DIR / plan_path.name


def load_reverse(plan: Plan) -> Plan | None:
    """The parsed reverse of `plan`, or None when it has none yet."""
    path = reverse_path(plan.path)
    return parse_plan(path) if path.is_file() else None


def recorded(plan: Plan) -> tuple[str | None, bool | None]:
    """What apply records with `plan` in history: its reverse file's text (None when it has
    no valid reverse) and whether the plan only expands (no hazard, so older code still
    works on its `to`)."""
    try:
        found = load_reverse(plan)
    except DeployError:
        found = None
    text = found.text if found is not None and mismatch(plan, found) is None else None
    try:
        expand_only = not hazards.classify(plan.body)
    except Exception:  # noqa: BLE001 - unparseable plans are refused before this matters
        expand_only = False
    return text, expand_only


def mismatch(plan: Plan, reverse: Plan) -> str | None:
    """Why `reverse` cannot be `plan`'s reverse (its header's fingerprints), or None."""
    if reverse.from_fingerprint != plan.to_fingerprint or (
            reverse.to_fingerprint != plan.from_fingerprint):
        return (f"the reverse of {plan.filename} must go from its 'to' to its 'from', but its "
                "header says otherwise; delete the reverse file and run `invoke plan "
                "--reverses` to generate it again")
    return None


def render_reverse(plan_name: str, filename: str, from_fp: str, to_fp: str, postgres: int,
                   body: str) -> str:
    """The text of a reverse plan file: a plan header (with hazards), a pointer, the SQL."""
    text = render_plan(f"reverse of {plan_name}", from_fp, to_fp, postgres,
                       hazards.classify(body), body)
    first, _, rest = text.partition("\n")
    return (f"{first}\n-- Reverse of {filename}: `invoke rollback` runs it; approve its hazards "
            f"like a plan's.\n{rest}")


def generate(server: ScratchServer, to_db: str, from_url: URL, exclusions: Exclusions,
             progress: Progress, proof_name: str = "reverse_proof", *,
             renamed: Sequence[Rename] = (),
             from_desc: Description | None = None) -> str:
    """SQL that takes the scratch database `to_db` back to the one at `from_url`, proven on
    a copy of `to_db`; DeployError when the differ cannot get there. `renamed`: the forward
    plan's renames (deploy/renames.py), undone first so the way back keeps the data too.
    `from_desc`: `from_url`'s description, when the caller has it."""
    statements = diff_back(server, to_db, from_url, exclusions, renamed=renamed)
    return prove_back(server, statements, to_db, from_url, from_desc, exclusions, progress,
                      proof_name)


def diff_back(server: ScratchServer, to_db: str, from_url: URL, exclusions: Exclusions, *,
              renamed: Sequence[Rename] = (),
              sides: tuple[Side | None, Side | None] = (None, None)) -> list[str]:
    """The differ's statements from `to_db` back to `from_url` (generate's first step);
    DeployError when it cannot express the way back or finds nothing. `sides`: the differ's
    reading of `to_db` and `from_url` when the caller has it (deploy.differ.read_side)."""
    from deploy.differ import diff
    from deploy.proof import connected
    from deploy.renames import run_renames, undo

    to_url = server.url(server.database_name(to_db))
    back = undo(renamed)
    source_url = to_url
    if back:
        source_url = server.create_database("reverse_proof_renamed", template=to_db)
        run_renames(source_url, back)
        sides = (None, sides[1])  # the renamed copy is not `to_db`
    with connected(source_url) as to_conn, connected(from_url) as from_conn:
        first = diff(to_conn, from_conn, exclusions, renamed=tuple(r.sql for r in back),
                     sides=sides)
    if back:
        server.drop_database("reverse_proof_renamed")
    if first.unexpressed:
        raise DeployError("The differ cannot express the way back: "
                          + "; ".join(str(d) for d in first.unexpressed[:5]))
    if not first.statements:
        raise DeployError("The differ found nothing to reverse.")
    return list(first.statements)


def prove_back(server: ScratchServer, statements: list[str], to_db: str, from_url: URL,
               from_desc: Description | None, exclusions: Exclusions, progress: Progress,
               proof_name: str = "reverse_proof", *,
               first_pass: FirstPass | None = None) -> str:
    """Prove diff_back's `statements` on a copy of `to_db` until they land on `from_url`'s
    schema (`from_desc`, described here when None); the SQL, or DeployError. `first_pass`:
    pass 1, already run (Early)."""
    from deploy.differ import diff
    from deploy.proof import connected, describe_url

    statements = list(statements)
    if from_desc is None:
        from_desc = describe_url(from_url, exclusions)
    for round_number in range(1, _MAX_ROUNDS + 1):
        if first_pass is not None and round_number == 1:
            copy, proof_url = first_pass.copy, first_pass.url
        else:
            progress(f"proving the reverse on a copy of the new schema (pass {round_number})")
            copy, proof_url = proof_name, server.create_database(proof_name, template=to_db)
        try:
            sql = "\n\n".join(statements) + "\n"
            if first_pass is not None and round_number == 1:
                residual = first_pass.outcome()
            else:
                residual = _run_pass(proof_url, sql, from_desc, exclusions)
            if not residual:
                return sql
            with connected(proof_url) as proof_conn, connected(from_url) as from_conn:
                follow_up = diff(proof_conn, from_conn, exclusions)
        finally:
            server.drop_database(copy)
        if not follow_up.statements:
            break
        statements += follow_up.statements
    raise DeployError("The generated reverse SQL does not land exactly on the plan's 'from'.")


def _run_pass(proof_url: URL, sql: str, from_desc: Description,
              exclusions: Exclusions) -> list[Difference]:
    """One proof pass of reverse SQL: what still differs from `from_desc` after it ran."""
    from deploy.proof import GeneratedSQLFailed, apply_and_compare

    try:
        return apply_and_compare(proof_url, sql, from_desc, exclusions)
    except GeneratedSQLFailed as exc:  # its advice is about plans: say it of a reverse
        raise DeployError(f"The differ's SQL for the way back {exc.cause}") from None


@dataclass
class FirstPass:
    """Pass 1 of a reverse's proof, running in a thread on its own copy of `to_db`."""

    copy: str
    url: URL
    job: Background[list[Difference]]

    def outcome(self) -> list[Difference]:
        """Wait for the pass; its residual, or the DeployError it raised."""
        return self.job.result()


class Early:
    """The way back of a plan being written, started before the forward proof: its diff
    right away (while the differ's reading of both databases can be shared, see
    deploy.differ.Side), the first pass of its proof in a thread on its own copy of
    `to_db`, so that the server runs both proofs at once (on two cores; the proofs send
    each step as one query, so the thread waits on the server, not on Python's lock).
    files() finishes it exactly as files_for() would have; close() always waits for it."""

    def __init__(self, server: ScratchServer, plan_path: Path, to_db: str, from_url: URL,
                 from_desc: Description, exclusions: Exclusions, progress: Progress, *,
                 renamed: Sequence[Rename] = (),
                 sides: tuple[Side | None, Side | None] = (None, None)) -> None:
        self._server, self._path, self._to_db, self._from_url = server, plan_path, to_db, from_url
        self._from_desc, self._exclusions, self._progress = from_desc, exclusions, progress
        self._statements: list[str] = []
        self._error: DeployError | None = None
        self._first: FirstPass | None = None
        self.sql = ""
        progress(f"generating the reverse of {plan_path.name}")
        try:
            self._statements = diff_back(server, to_db, from_url, exclusions, renamed=renamed,
                                         sides=sides)
        except DeployError as exc:
            self._error = exc
            return
        progress("proving the reverse on a copy of the new schema (pass 1)")
        # The copy is made before the thread starts: a template copy fails while anything
        # else is connected to the template, and the forward proof connects to "desired".
        url = server.create_database("reverse_proof", template=to_db)
        self.sql = sql = "\n\n".join(self._statements) + "\n"
        with contextlib.suppress(Exception):  # parsed here (remembered), the thread only waits
            parse_statements(sql)  # on the server; a parse error is the proof's to report
        self._first = FirstPass("reverse_proof", url, Background(
            lambda: _run_pass(url, sql, from_desc, exclusions), "reverse-proof"))

    def classify_ahead(self) -> None:
        """Classify the reverse's SQL now (hazards remembers it), while the server proves:
        its file shows its hazards."""
        if self._first is not None:
            with contextlib.suppress(Exception):  # files() classifies again and reports
                hazards.classify(self.sql)

    def files(self, plan_name: str, from_fp: str, to_fp: str,
              postgres: int) -> tuple[dict[Path, str], str | None]:
        """The reverse file to write ({} and a note when none could be made), as files_for."""
        try:
            if self._error is not None:
                raise self._error
            body = prove_back(self._server, self._statements, self._to_db, self._from_url,
                              self._from_desc, self._exclusions, self._progress,
                              first_pass=self._first)
        except DeployError as exc:
            return {}, _no_reverse_note(self._path, exc)
        finally:
            self._first = None
        text = render_reverse(plan_name, self._path.name, to_fp, from_fp, postgres, body)
        return {reverse_path(self._path): text}, None

    def close(self) -> None:
        """Wait for the thread and drop its copy (when files() did not run)."""
        first, self._first = self._first, None
        if first is not None:
            first.job.wait()
            with contextlib.suppress(Exception):
                self._server.drop_database(first.copy)


def _no_reverse_note(plan_path: Path, exc: DeployError) -> str:
    return (f"No reverse was written for {plan_path.name}: {exc.message} Write the SQL "
            f"that takes 'to' back to 'from' into {reverse_path(plan_path)} (same header "
            "with 'from' and 'to' swapped); `invoke check` proves it.")


def prove(server: ScratchServer, reverse: Plan, to_db: str, from_desc: Description,
          exclusions: Exclusions, proof_name: str = "reverse_check", *,
          consume: bool = False) -> str | None:
    """Apply a reverse file to a copy of `to_db` (to `to_db` itself with `consume`: the
    caller no longer needs it, and a copy of a big schema costs seconds); None when it
    lands on `from_desc`, else why."""
    from deploy.proof import apply_and_compare

    if consume:
        proof_name, url = to_db, server.url(server.database_name(to_db))
    else:
        url = server.create_database(proof_name, template=to_db)
    try:
        residual = apply_and_compare(url, reverse.body, from_desc, exclusions,
                                      reverse.filename)
    except DeployError as exc:
        return exc.message
    finally:
        server.drop_database(proof_name)
    if residual:
        got = fingerprint(from_desc)
        return (f"it does not land on the forward plan's 'from' ({got[:19]}…); "
                f"{len(residual)} difference(s) remain, e.g. {residual[0]}")
    return None


def files_for(server: ScratchServer, plan_path: Path, plan_name: str, from_fp: str, to_fp: str,
              postgres: int, exclusions: Exclusions, progress: Progress, *, to_db: str,
              from_url: URL, renamed: Sequence[Rename] = (),
              from_desc: Description | None = None) -> tuple[dict[Path, str], str | None]:
    """The reverse file to write next to a new plan ({} and a note when none could be made);
    `renamed` and `from_desc` as in generate()."""
    progress(f"generating the reverse of {plan_path.name}")
    try:
        body = generate(server, to_db, from_url, exclusions, progress, renamed=renamed,
                        from_desc=from_desc)
    except DeployError as exc:
        return {}, _no_reverse_note(plan_path, exc)
    text = render_reverse(plan_name, plan_path.name, to_fp, from_fp, postgres, body)
    return {reverse_path(plan_path): text}, None


def _states(server: ScratchServer, chain: list[Plan], exclusions: Exclusions,
            progress: Progress, *, last: str | None = None) -> list[tuple[str, URL]]:
    """Scratch databases `state_0` (empty) … `state_n` (after plan n) with their URLs, each
    replayed and checked against the plans' fingerprints; DeployError when one does not land.
    `last`: a database where the whole chain already landed, used as `state_n`."""
    from deploy.proof import replay

    states = [("state_0", server.create_database("state_0"))]
    for number, plan in enumerate(chain, start=1):
        if last is not None and number == len(chain):
            states.append((last, server.url(server.database_name(last))))
            break
        name = f"state_{number}"
        done = replay(server, name, [plan], exclusions, progress, template=states[-1][0])
        if done.failure:
            raise DeployError(f"The plans do not replay cleanly: {done.failure}")
        states.append((name, done.url))
    return states


def write_missing(config: Config, scratch: str | None, progress: Progress) -> list[Path]:
    """Generate and write the reverse of every plan in the chain that has none; return them."""
    from deploy.planner import write_files
    from deploy.plans import load_chain
    from deploy.scratch import open_scratch

    graph = load_chain(config.plans_dir)
    missing = [i for i, p in enumerate(graph.chain) if not reverse_path(p.path).exists()]
    if not missing:
        return []
    files: dict[Path, str] = {}
    with open_scratch(scratch or config.scratch, config.postgres, image=config.docker_image,
                      progress=progress) as server:
        states = _states(server, graph.chain, config.exclusions, progress)
        for index in missing:
            plan = graph.chain[index]
            written, note = files_for(
                server, plan.path, plan.name, plan.from_fingerprint, plan.to_fingerprint,
                plan.postgres, config.exclusions, progress,
                to_db=states[index + 1][0], from_url=states[index][1])
            if note:
                raise DeployError(note)
            files.update(written)
    write_files(files)
    return sorted(files)


def check_all(server: ScratchServer, chain: list[Plan], exclusions: Exclusions,
              progress: Progress, *, head_db: str | None = None) -> tuple[list[str], list[str]]:
    """(problems, notes) about the reverses of `chain`: a reverse that does not land on its
    plan's `from` is a problem; a plan without a reverse is a note. `head_db`: a scratch
    database where the whole chain landed and that the caller no longer needs: the last
    plan's reverse is proven on it (no second replay, no copy)."""
    from deploy.proof import describe_url

    problems: list[str] = []
    notes: list[str] = []
    reverses: dict[int, Plan] = {}
    for index, plan in enumerate(chain):
        try:
            found = load_reverse(plan)
        except DeployError as exc:
            problems.append(exc.message)
            continue
        if found is None:
            notes.append(f"{plan.filename} has no reverse: `invoke rollback` cannot undo it. "
                         "Run `invoke plan --reverses` to generate the missing reverses.")
            continue
        why = mismatch(plan, found)
        if why:
            problems.append(f"{reverse_path(plan.path).name}: {why}.")
            continue
        reverses[index] = found
    if not reverses:
        return problems, notes
    last = head_db if max(reverses) + 1 == len(chain) else None
    states = _states(server, chain[: max(reverses) + 1], exclusions, progress, last=last)
    for index, found in sorted(reverses.items()):
        progress(f"proving the reverse of {chain[index].filename}")
        from_desc = describe_url(states[index][1], exclusions)
        why = prove(server, found, states[index + 1][0], from_desc, exclusions,
                    consume=last is not None and index + 1 == len(chain))
        if why:
            problems.append(
                f"reverse/{found.filename} does not take {chain[index].filename}'s 'to' back to "
                f"its 'from': {why} Restore it from version control, or delete it and run "
                "`invoke plan --reverses`.")
    return problems, notes


def record_in_check(result: object, problems: list[str], notes: list[str]) -> None:
    """Record check_all's (problems, notes) in a `check` result: reverses that do not land
    are errors, plans without a reverse are notes. Unapproved reverse hazards are not
    findings: the reverse files show them to the reviewer, and `rollback` refuses them
    (exit 3) when it would run them."""
    from deploy import errors
    from deploy.checker import Finding

    for problem in problems:
        result.add(Finding(errors.ERROR, "reverse", "Reverse plan does not land",  # type: ignore[attr-defined]
                           problem))
    result.notes.extend(notes)  # type: ignore[attr-defined]


def cache_key(config: Config, chain: list[Plan]) -> str:
    """Cache key of "every reverse of this chain was proven": the plans' and their reverse
    files' bytes (a missing reverse counts as such), so any edit means proving again."""
    from deploy import cache

    parts: list[bytes] = [b"reverses"]
    for plan in chain:
        path = reverse_path(plan.path)
        parts += [plan.text.encode("utf-8"), path.read_bytes() if path.exists() else b"-"]
    return cache._key("reverses", config, parts)
