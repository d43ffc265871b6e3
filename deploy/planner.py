"""`plan`: replay the reviewed plans, build the models, diff, prove, write the next plan file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg2
from pglast import ast, enums
from sqlalchemy.engine import URL

from deploy import cache, renames, reverse, snapshot, urls
from deploy import contract as contract_split
from deploy import desired as desired_state
from deploy import target as target_db
from deploy.background import Background
from deploy.config import Config
from deploy.differ import Diff, Side, diff, frozen_reads, read_side
from deploy.differ.migra_adapter import inspect_schema
from deploy.differ.migra_adapter import load as load_migra
from deploy.errors import DeployError
from deploy.fingerprint import (
    Description,
    Exclusions,
    describe,
    fingerprint,
    format_differences,
)
from deploy.hazards import Hazard, classify, review
from deploy.plans import (
    Plan,
    PlanGraph,
    load_chain,
    new_plan_path,
    render_plan,
)
from deploy.proof import (
    Replay,
    connected,
    converge,
    describe_url,
    prove,
    prove_parts,
    replay,
)
from deploy.scratch import EarlyScratch, ScratchServer, open_scratch
from deploy.statements import forget_all as forget_parse_trees
from deploy.statements import parse as parse_statements

Progress = Callable[[str], None]


@dataclass
class PlanResult:
    """What `plan` found and did."""

    status: str  # "up-to-date" | "written" | "pending"
    sql: str = ""
    plan_path: Path | None = None
    from_fingerprint: str | None = None
    to_fingerprint: str | None = None
    hazards: list[Hazard] = field(default_factory=list)
    snapshot_written: bool = False
    target: str | None = None
    target_on_chain: bool | None = None
    notes: list[str] = field(default_factory=list)
    reverse_path: Path | None = None  # the reverse written with the plan (deploy/reverse.py)
    # Two-part plans (deploy/contract.py): the state between expand and contract, and the
    # contract part's BACKWARD_INCOMPATIBLE hazards, which their placement satisfies.
    expanded_fingerprint: str | None = None
    placed: list[Hazard] = field(default_factory=list)


def make_plan(
    config: Config,
    *,
    name: str | None = None,
    scratch: str | None = None,
    check: bool = False,
    target: str | None = None,
    sql_file: Path | None = None,
    online: bool | None = None,
    contract: bool | None = None,
    progress: Progress = lambda _msg: None,
    use_cache: bool = True,
) -> PlanResult:
    """Compute the next plan; write it (and the snapshot) unless `check` or `target` is given.

    With `target`, the live database at that URL is compared read-only with the models.
    Never writes a plan that does not land exactly on the models' fingerprint. `online`
    (default: [tool.deploy] online) picks the non-blocking forms for existing tables. With
    nothing changed since a verified run (deploy.cache), answers without a scratch server.
    `contract` (default: [tool.deploy] contract) splits a generated plan into an expand and
    a contract part (deploy/contract.py) when both parts prove.
    """
    exclusions = config.exclusions
    online = config.online if online is None else online
    contract = config.contract if contract is None else contract
    graph = load_chain(config.plans_dir)
    start = EarlyScratch(scratch or config.scratch, config.postgres, image=config.docker_image,
                         roles=config.roles, progress=progress)
    try:
        if target is None and not _cache_may_answer(config, graph, use_cache, sql_file):
            # The server starts (subprocesses) while the models are imported and compiled.
            start.begin()
        desired = desired_state.load_desired(config)
        if target is not None:
            return _preview_target(
                config, graph, desired, target, scratch, exclusions, progress, online=online
            )
        memo = cache.open_memo(config, desired, graph.chain, progress, use_cache=use_cache)
        known = memo.unchanged() if memo is not None and sql_file is None else None
        if known is not None:
            return _up_to_date(config, known.fingerprint, known.description, known.ddl, check)
        asked = _Asked(name, check, sql_file, online, contract, progress)
        return _plan_on_server(config, graph, desired, memo, start, asked)
    finally:
        start.close()  # a server started early and never used (an error above) stops here


def _cache_may_answer(config: Config, graph: PlanGraph, use_cache: bool,
                      sql_file: Path | None) -> bool:
    """Whether the cache may answer without a server: not when it is off, nor when it has
    never seen this chain land (a cold cache: then the server is sure to be needed)."""
    return use_cache and sql_file is None and cache_knows_head(config, graph.chain)


def cache_knows_head(config: Config, chain: list[Plan]) -> bool:
    """Whether the cache holds the state of this chain's head (without reading it): when
    not, no command can answer from the cache and a scratch server will be needed."""
    try:
        return cache._entry_path("head", cache.head_key(config, chain)).is_file()
    except OSError:
        return True  # let the cache decide, as before


@dataclass(frozen=True)
class _Asked:
    """What this `plan` run was asked to do (make_plan's options, resolved)."""

    name: str | None
    check: bool
    sql_file: Path | None
    online: bool
    contract: bool
    progress: Progress


def _plan_on_server(
    config: Config,
    graph: PlanGraph,
    desired: desired_state.DesiredSchema,
    memo: cache.Memo | None,
    start: EarlyScratch,
    asked: _Asked,
) -> PlanResult:
    """make_plan's work on the scratch server: replay, build, diff, prove, write."""
    exclusions, check, sql_file, progress = (
        config.exclusions, asked.check, asked.sql_file, asked.progress)
    with start as server, ExitStack() as frozen:
        base = replay(server, "base", graph.chain, exclusions, progress)
        if base.failure:
            raise DeployError(
                "The existing plans do not replay cleanly, so no new plan can be computed on top "
                f"of them: {base.failure} Run `invoke check` for the full report."
            )
        base_url, base_fp = base.url, fingerprint(base.description)
        if memo is not None:
            memo.save_head(base.description)  # every plan landed: replay() said so
            # New plans (e.g. just written) but the same models: no need to build them.
            models = memo.models_at(base_fp) if sql_file is None else None
            if models is not None:
                return _up_to_date(config, base_fp, models.description, models.ddl, check)

        # A first plan's base is an empty database: it serves as the "empty" one too.
        empty_base = not graph.chain
        empty_url = base_url if empty_base else server.create_database("empty")
        progress("building the desired schema from the models")
        desired_url = server.create_database("desired")
        # The database stands for the models from here on: they are let go while it builds.
        # And migra is imported meanwhile: the first diff needs it next.
        desired_state.build(desired, desired_url, release=True, meanwhile=load_migra)
        # From here on "empty", "base" and "desired" never change (proofs run on copies):
        # the differ's catalog reads of them are answered once for all the diffs.
        frozen.enter_context(frozen_reads([empty_url, base_url, desired_url]))
        # The differ reads "empty", "base" and "desired" once for up to three diffs (models
        # from empty, base to models, and the reverse): none of them changes below. The
        # fingerprint's reading of "desired" runs beside migra's (each waits on the server
        # part of the time).
        described = Background(lambda: describe_url(desired_url, exclusions), "describe")
        with connected(empty_url) as empty_conn, connected(desired_url) as desired_conn:
            try:
                inspected = inspect_schema(desired_conn, exclusions)
            finally:
                desired_desc = described.result()
            desired_fp = fingerprint(desired_desc)
            desired_side = Side(inspected, desired_desc)
            del inspected
            empty_side = read_side(empty_conn, exclusions,
                                   base.description if empty_base else None)
            from_empty = diff(empty_conn, desired_conn, exclusions,
                              sides=(empty_side, desired_side))
        full_ddl = from_empty.sql
        if memo is not None:
            memo.save_desired(desired_desc, full_ddl)
        stale = snapshot.stale_files(config, full_ddl, desired_desc)

        if base_fp == desired_fp and sql_file is None:
            return _up_to_date(config, desired_fp, desired_desc, full_ddl, check)
        if empty_base:
            base_side = empty_side
        else:
            with connected(base_url) as base_conn:
                base_side = read_side(base_conn, exclusions, base.description)
        # Handed over in a list the callee empties: these readings (~10 MB at 1000 tables)
        # must be freed once the diffs are done, not when this frame returns.
        readings = [base_side, desired_side]
        del base_side, desired_side, empty_side
        return _prove_and_write(
            config, graph, desired, memo, server, base, readings, from_empty, full_ddl,
            stale, desired_url, desired_desc, desired_fp, asked)


def _prove_and_write(
    config: Config,
    graph: PlanGraph,
    desired: desired_state.DesiredSchema,
    memo: cache.Memo | None,
    server: ScratchServer,
    base: Replay,
    readings: list[Side],
    from_empty: Diff,
    full_ddl: str,
    stale: dict[Path, str],
    desired_url: URL,
    desired_desc: Description,
    desired_fp: str,
    asked: _Asked,
) -> PlanResult:
    """make_plan once the models differ from the base: the plan's SQL (generated, or the
    user's --sql-file), proven; its reverse, proven beside it; the files written."""
    name, check, sql_file, online, contract, progress = (
        asked.name, asked.check, asked.sql_file, asked.online, asked.contract, asked.progress)
    exclusions = config.exclusions
    base_url, base_fp = base.url, fingerprint(base.description)
    empty_base = not graph.chain
    base_side, desired_side = readings
    readings.clear()
    plan_name = name or "schema change"
    path = new_plan_path(config.plans_dir, plan_name)
    early: reverse.Early | None = None
    try:
        renamed: list[renames.Rename] = []
        if sql_file is not None:
            body = _read_sql_file(sql_file)
            if not check:
                early = _early_reverse(server, path, base, base_side, desired_side, renamed,
                                       exclusions, progress)
            del base_side, desired_side
            progress(f"verifying {sql_file} against the models")
            residual = prove(server, body, desired_desc, exclusions, str(sql_file))
            if residual:
                raise DeployError(
                    f"{sql_file} does not take the schema to the models; the plan was not "
                    "written. Add SQL for the differences below and run the same command again.",
                    exit_code=1,
                    details=format_differences(residual),
                )
            expanded, split_notes = _hand_written_parts(
                server, body, sql_file, desired_desc, exclusions, progress)
        else:
            if empty_base and online:
                first = from_empty  # the same two databases, the same options: the same diff
            else:
                progress("diffing the replayed plans against the models")
                # renamed_from hints: diff from a renamed copy of the base (deploy/renames.py).
                source_url, renamed = renames.rename_base(
                    server, base_url, desired_url, desired.renames, progress)
                with connected(source_url) as base_conn, connected(desired_url) as desired_conn:
                    first = diff(base_conn, desired_conn, exclusions, online=online,
                                 renamed=tuple(r.sql for r in renamed),
                                 sides=(None if renamed else base_side, desired_side))
            del from_empty  # its statements live on in `first` or `full_ddl`
            # The forward proof runs in a thread: while the server executes the plan (one
            # query per step, so the thread waits without Python's lock) this thread diffs
            # the way back and classifies the plan (classify remembers its answer).
            parse_statements(first.sql)  # both threads then find its trees parsed
            proof_url = server.create_database("proof", template="base")
            forward = Background(lambda: converge(
                server, first, desired_url, desired_desc, exclusions, progress, online=online,
                proof_url=proof_url), "forward-proof")
            try:
                if not check:
                    early = _early_reverse(server, path, base, base_side, desired_side,
                                           renamed, exclusions, progress)
                del base_side, desired_side  # migra's readings: ~10 MB at 1000 tables
                if not first.unexpressed:
                    classify(first.sql)
                if early is not None:
                    early.classify_ahead()
            finally:
                body = forward.result()
            del first
            expanded, split_notes = None, []
            if contract:
                body, expanded, split_notes = _two_parts(
                    server, body, base.description, desired_desc, base_fp, desired_fp,
                    exclusions, progress)

        hazards = classify(body)
        placed = _placed(body, hazards) if expanded else []
        result = PlanResult(
            "pending" if check else "written",
            sql=body,
            from_fingerprint=base_fp,
            to_fingerprint=desired_fp,
            hazards=[h for h in hazards if h not in placed],
            expanded_fingerprint=expanded,
            placed=placed,
            notes=split_notes,
        )
        # A renamed column shows as a column drop, which is always a hazard: no drop, no
        # rename to suggest (and no second parse of a big first plan).
        if sql_file is None and any(" drop column " in h.text for h in hazards):
            result.notes += rename_notices(body, base_url, desired_url)
        # Every parse of the body (proof, split, hazards, renames) is done: its trees are the
        # biggest thing alive (~60 MB at 1000 tables) and would sit under the reverse diff's
        # peak. The memo starts over; nothing below reads those trees.
        forget_parse_trees()
        if check:
            return result
        header_body = render_plan(plan_name, base_fp, desired_fp, config.postgres, hazards, body,
                                  expanded=expanded)
        # The way back is written with the plan, proven the same way (deploy/reverse.py),
        # on its own copy of "desired" while the forward proof ran.
        assert early is not None
        reverses, reverse_note = early.files(plan_name, base_fp, desired_fp, config.postgres)
        result.notes += [reverse_note] if reverse_note else []
        write_files({path: header_body, **reverses, **stale})
        result.plan_path = path
        result.reverse_path = next(iter(reverses), None)
        result.snapshot_written = bool(stale)
        # Hazard lines were counted in the body; in the file the header comes first.
        shift = _body_line_shift(body, header_body)
        result.hazards = [replace(h, line=h.line + shift) for h in result.hazards]
        result.placed = [replace(h, line=h.line + shift) for h in placed]
        if memo is not None and reverses and not reverse_note:
            _record_proof(config, graph.chain, path, body, desired_desc,
                          [replace(h, line=h.line + shift) for h in hazards])
        return result
    finally:
        if early is not None:
            early.close()


def _early_reverse(server: ScratchServer, path: Path, base: Replay, base_side: Side,
                   desired_side: Side, renamed: list[renames.Rename], exclusions: Exclusions,
                   progress: Progress) -> reverse.Early:
    """The reverse of the plan about to be proven (to "desired" back to the base), started
    now: its diff shares the differ's readings, its proof runs beside the forward one."""
    return reverse.Early(server, path, "desired", base.url, base.description, exclusions,
                         progress, renamed=renamed, sides=(desired_side, base_side))


def _two_parts(
    server: ScratchServer,
    body: str,
    base_desc: Description,
    desired_desc: Description,
    base_fp: str,
    desired_fp: str,
    exclusions: Exclusions,
    progress: Progress,
) -> tuple[str, str | None, list[str]]:
    """(body, expanded fingerprint, notes): the generated body cut into an expand and a
    contract part when some statement would break the old code and both parts prove; else
    the body unchanged, None, and a note saying why it stays one part."""
    parts = contract_split.split(body, base_desc, desired_desc)
    if not parts.contract:
        return body, None, []
    expanded, why = prove_parts(server, _script(parts.expand), _script(parts.contract),
                                desired_desc, exclusions, progress)
    if expanded is None or expanded == desired_fp:
        why = why or "the expand part alone already reaches the models"
        return body, None, [
            f"The plan stays in one part (all of it runs in one deploy, while the old code "
            "still serves): splitting off what the old code cannot live with did not prove: "
            f"{why.rstrip('. ')}. Review its BACKWARD_INCOMPATIBLE hazards with that in mind, "
            "or turn splitting off for this plan with --no-contract."]
    reasons = sorted(set(parts.reasons))
    after = "an expand part" if parts.expand else "an empty expand part"
    if parts.expand and expanded == base_fp:
        after += " that leaves the schema's fingerprint as it is"
    return contract_split.render_body(parts.expand, parts.contract), expanded, [
        f"Two parts: {after}, which `apply` runs in the deploy that ships the new code, and "
        f"{len(parts.contract)} statement(s) in the contract part, which runs in the next "
        "deploy, after the new code is live (" + "; ".join(reasons) + "). Both parts are "
        "proven: from -> expanded -> to."]


def _hand_written_parts(
    server: ScratchServer,
    body: str,
    sql_file: Path,
    desired_desc: Description,
    exclusions: Exclusions,
    progress: Progress,
) -> tuple[str | None, list[str]]:
    """A --sql-file with its own `-- phase: contract` line is a two-part plan: prove its
    parts one after the other and return the fingerprint between them (None: one part)."""
    marker = contract_split.contract_line(body)
    if marker is None:
        return None, []
    lines = body.split("\n")
    # Blank lines keep the statements' line numbers those of the user's file.
    expand = "\n".join(lines[: marker - 1])
    contract = "\n" * (marker - 1) + "\n".join(lines[marker - 1 :])
    expanded, why = prove_parts(server, expand, contract, desired_desc, exclusions, progress)
    if expanded is None:
        raise DeployError(
            f"{sql_file} has a '-- phase: contract' line, but its two parts do not prove: {why} "
            "Move statements across the line (or remove it for a one-part plan) and run the "
            "same command again."
        )
    return expanded, [f"{sql_file} has two parts (split at its line {marker}); both are "
                      "proven: from -> expanded -> to."]


def _script(statements: list[str]) -> str:
    return "\n\n".join(statements) + "\n" if statements else ""


def _placed(body: str, hazards: list[Hazard]) -> list[Hazard]:
    """The hazards whose place in the contract part is their approval (hazards.review)."""
    verdict = review(body, [], hazards=hazards)
    return [h for h, approval in verdict.hazards if approval is not None]


def _record_proof(config: Config, old_chain: list[Plan], path: Path, body: str,
                  desired_desc: Description, hazards: list[Hazard]) -> None:
    """Tell the cache what this run proved, so the next `check` need not replay it: the
    chain with the new plan lands on the models (the plan's SQL, byte for byte, was applied
    to a replay of the old chain), its reverse landed, and its hazards. Recorded only when
    the files as written hold exactly what was proven."""
    try:
        chain = load_chain(config.plans_dir).chain
    except DeployError:
        return
    if [p.path for p in chain] != [*(p.path for p in old_chain), path]:
        return  # another plan file appeared meanwhile: let check replay
    new = chain[-1]
    if new.body.strip() != body.strip() or new.to_fingerprint != fingerprint(desired_desc):
        return
    old_reverses = reverse.cache_key(config, old_chain)
    if old_chain and cache.load_payload("reverses", old_reverses) != "proven":
        return  # the older reverses were never proven here: check must prove them
    cache.remember_hazards(new.body, hazards)
    cache.store("head", cache.head_key(config, chain),
                cache.Known(new.to_fingerprint, dict(desired_desc)))
    cache.store_payload("reverses", reverse.cache_key(config, chain), "proven")


def _body_line_shift(body: str, file_text: str) -> int:
    """How many lines further down the body's first statement sits in the file than in
    `body` (render_plan writes `body.strip()` at the end of the file)."""
    stripped = body.strip()
    in_file = file_text.count("\n", 0, len(file_text) - len(stripped) - 1)
    in_body = body.count("\n", 0, len(body) - len(body.lstrip()))
    return in_file - in_body


def write_files(files: dict[Path, str]) -> None:
    """Write all `files` or none: each goes to a temporary file first, and the temporaries
    are renamed into place only once every one of them was written."""
    temporaries: dict[Path, Path] = {}
    renamed: list[tuple[Path, str | None]] = []  # (path, its previous content) for undo
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            # A dot name without .sql: load_plans never mistakes it for a plan.
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporaries[path] = temporary
            temporary.write_text(text, encoding="utf-8")
        for path, temporary in temporaries.items():
            previous = _read(path)
            temporary.replace(path)
            renamed.append((path, previous))
    except OSError as exc:
        for path, previous in reversed(renamed):
            with contextlib.suppress(OSError):
                if previous is None:
                    path.unlink()
                else:
                    path.write_text(previous, encoding="utf-8")
        for temporary in temporaries.values():
            with contextlib.suppress(OSError):
                temporary.unlink()
        raise DeployError(
            f"Could not write {exc.filename or 'the plan files'}: {exc.strerror or exc}. No plan "
            "and no snapshot file was written (they are written all at once or not at all). "
            "Fix the path or its permissions ([tool.deploy] plans and snapshot) and run again."
        ) from None


def rename_notices(body: str, base_url: URL, desired_url: URL) -> list[str]:
    """A note for each table where the SQL drops a column and adds one of the same type:
    that is how a renamed model column looks to the differ, and it would lose the data."""
    drops: dict[tuple[str, str], list[str]] = {}
    adds: dict[tuple[str, str], list[str]] = {}
    for parsed in parse_statements(body):
        node = parsed.node
        if not isinstance(node, ast.AlterTableStmt) or node.relation is None:
            continue
        table = (node.relation.schemaname or "public", node.relation.relname)
        for cmd in node.cmds or ():
            if cmd.subtype == enums.AlterTableType.AT_DropColumn and cmd.name:
                drops.setdefault(table, []).append(cmd.name)
            elif cmd.subtype == enums.AlterTableType.AT_AddColumn and cmd.def_ is not None:
                adds.setdefault(table, []).append(cmd.def_.colname)
    notes = []
    for table in sorted(set(drops) & set(adds)):
        old_types = _column_types(base_url, table, drops[table])
        new_types = _column_types(desired_url, table, adds[table])
        unmatched = list(adds[table])
        for old in drops[table]:
            same = [new for new in unmatched if new_types.get(new) == old_types.get(old)]
            if not same or old not in old_types:
                continue
            new = same[0]
            unmatched.remove(new)  # each added column is suggested for one rename only
            name = f"{_ident(table[0])}.{_ident(table[1])}"
            notes.append(
                f"{name}: column {_ident(old)} is dropped and {_ident(new)} "
                f"({old_types[old]}) is added, which loses the column's data. If you renamed "
                "it, say so in the model: delete the plan file this command wrote (if any), "
                f"give the column info={{\"renamed_from\": \"{old}\"}} (e.g. "
                f"mapped_column(..., info={{\"renamed_from\": \"{old}\"}})) and run `invoke "
                "plan` again; the plan then renames it and keeps every value. Or write the "
                "rename yourself: put\n"
                f"    ALTER TABLE {name} RENAME COLUMN {_ident(old)} TO {_ident(new)};\n"
                "into a file, e.g. rename.sql, and run `invoke plan --name \"rename …\" "
                "--sql-file rename.sql` (it is verified against the models before it is saved)."
            )
    return notes


def _column_types(url: URL, table: tuple[str, str], columns: list[str]) -> dict[str, str]:
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))  # type: ignore[arg-type]
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = "
                "c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND a.attname = ANY(%s) "
                "AND a.attnum > 0 AND NOT a.attisdropped",
                (table[0], table[1], columns),
            )
            return dict(cur.fetchall())
    finally:
        conn.close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _up_to_date(
    config: Config, fp: str, description: Description, ddl: str, check: bool
) -> PlanResult:
    """Nothing to plan: only the snapshot files may need rewriting (not with `check`)."""
    result = PlanResult("up-to-date", from_fingerprint=fp, to_fingerprint=fp)
    stale = snapshot.stale_files(config, ddl, description)
    if stale and not check:
        write_files(stale)
        result.snapshot_written = True
    return result


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _read_sql_file(path: Path) -> str:
    text = _read(path)
    if text is None:
        raise DeployError(f"Cannot read --sql-file {path}: check the path.")
    if not text.strip():
        raise DeployError(f"--sql-file {path} is empty: write the SQL of the change into it.")
    return text


def _preview_target(
    config: Config,
    graph: PlanGraph,
    desired: desired_state.DesiredSchema,
    target: str,
    scratch: str | None,
    exclusions: Exclusions,
    progress: Progress,
    *,
    online: bool = True,
) -> PlanResult:
    url = urls.parse_url(target)
    conn = target_db.connect(url, wait=10, read_only=True, progress=progress)
    try:
        major = target_db.server_major(conn)
        live_fp = fingerprint(describe(conn, exclusions))
        roles = (*config.roles, *target_db.referenced_roles(conn))
    finally:
        conn.close()
    result = PlanResult("up-to-date", target=urls.describe(url), from_fingerprint=live_fp)
    if major != config.postgres:
        result.notes.append(
            f"The target runs PostgreSQL {major} but [tool.deploy] postgres is "
            f"{config.postgres}; the preview uses a PostgreSQL {major} scratch server."
        )
    with open_scratch(
        scratch or config.scratch, major, image=config.docker_image, roles=roles,
        progress=progress,
    ) as server:
        progress("building the desired schema from the models")
        desired_url = server.create_database("desired")
        desired_state.build(desired, desired_url)
        desired_desc = describe_url(desired_url, exclusions)
        desired_fp = fingerprint(desired_desc)
        engine = target_db.sqlalchemy_engine(url, read_only=True)
        try:
            with engine.connect() as live, connected(desired_url) as desired_conn:
                change = diff(live, desired_conn, exclusions, online=online)
        finally:
            engine.dispose()
        result.to_fingerprint = desired_fp
        result.target_on_chain = graph.known(live_fp)
        if change.sql and not change.unexpressed:
            result.notes.append(
                _prove_preview(server, graph, live_fp, change.sql, desired_desc, exclusions,
                               progress)
            )
    if not change.empty:
        result.status = "pending"
        result.sql = change.sql
        if change.unexpressed:
            result.notes.append(
                "Differences with no generated SQL:\n" + format_differences(change.unexpressed)
            )
        result.hazards = classify(change.sql) if change.sql else []
    return result


def _prove_preview(
    server: ScratchServer,
    graph: PlanGraph,
    live_fp: str,
    sql: str,
    desired_desc: Description,
    exclusions: Exclusions,
    progress: Progress,
) -> str:
    """Prove a `--target` preview like a plan, on a replay of the plans up to the live
    schema; a sentence saying whether it is proven (and what it misses when not)."""
    prefix = None
    for number in range(len(graph.chain) + 1):
        reached = graph.chain[number - 1].to_fingerprint if number else graph.start
        if reached == live_fp:
            prefix = graph.chain[:number]
            break
    empty_fp = fingerprint(describe_url(server.create_database("empty_preview"), exclusions))
    if prefix is None and live_fp == empty_fp:
        prefix = []
    if prefix is None:
        return ("UNPROVEN: the live schema is not one the plans reach, so this SQL could not be "
                "applied to a copy of it; it may not reach the models exactly. Run `invoke plan` "
                "for a proven plan.")
    base = replay(server, "base", prefix, exclusions, progress)
    if base.failure:
        return f"UNPROVEN: the plans up to the live schema do not replay: {base.failure}"
    progress("proving the preview on a replay of the live schema")
    try:
        residual = prove(server, sql, desired_desc, exclusions, "preview")
    except DeployError as exc:
        return f"UNPROVEN: the SQL fails on a replay of the live schema: {exc.message}"
    if residual:
        return ("UNPROVEN: applied to a replay of the live schema, this SQL does not reach the "
                "models exactly:\n" + format_differences(residual))
    return "Proven: applied to a replay of the live schema, this SQL lands on the models."
