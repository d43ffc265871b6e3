"""`check`: the CI gate. Collects every finding about the plans, the models and a target.

Nothing here stops at the first problem: damaged files, forks, plans that miss their `to`,
drift and unapproved hazards are all gathered into one CheckResult, whose exit code is the
most severe finding's (1 error > 4 drift > 3 unapproved hazard > 0). Only a scratch server
that cannot start (or a broken configuration) ends the check early, as a DeployError.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL

from deploy import cache, errors, position, railway, reverse, snapshot, urls
from deploy import desired as desired_state
from deploy import target as target_db
from deploy.config import Config
from deploy.differ import diff
from deploy.errors import DeployError
from deploy.fingerprint import (
    Description,
    Exclusions,
    fingerprint,
    format_differences,
)
from deploy.hazards import Hazard, classify, review
from deploy.planner import cache_knows_head
from deploy.plans import Plan, PlanGraph, build_graph, parse_plan, short
from deploy.proof import connected, describe_url, prove, replay
from deploy.scratch import EarlyScratch, ScratchServer
from deploy.statements import StatementError

Progress = Callable[[str], None]

# Most severe first: an error outranks drift, drift outranks an unapproved hazard.
SEVERITY_ORDER = (errors.ERROR, errors.DRIFT, errors.UNAPPROVED_HAZARD)
SEVERITY_NAMES = {errors.ERROR: "error", errors.DRIFT: "drift",
                  errors.UNAPPROVED_HAZARD: "hazard"}

# Plan replay states.
LANDED = "landed"
FAILED = "failed"
NOT_REPLAYED = "not-replayed"
DAMAGED = "damaged"

_RUN_PLAN = 'Run `invoke plan --name "<what changed>"`'


@dataclass(frozen=True)
class Finding:
    """One problem; `severity` is the exit code it forces (1 error, 4 drift, 3 hazard)."""

    severity: int
    kind: str  # damaged | replay | fork | roots | orphan | models | drift | snapshot | target
    #            | target-drift | hazard | railway
    title: str  # a few words, for annotation titles and table rows
    message: str  # one paragraph that says what is wrong and what to do
    file: str | None = None  # relative to the project root, with '/' separators
    line: int | None = None  # 1-based line in `file`
    details: str = ""  # extra lines: SQL, differing objects


@dataclass(frozen=True)
class HazardCheck:
    """A hazard found in a plan's body, and whether its header approves it."""

    kind: str
    text: str
    line: int  # line of the statement in the plan file
    approved: bool
    reason: str | None = None
    part: str | None = None  # 'expand' | 'contract' in a two-part plan, else None


@dataclass
class PlanCheck:
    """One plan file: where it sits in the graph, whether it lands, its hazards."""

    file: str
    name: str
    from_fingerprint: str | None
    to_fingerprint: str | None
    on_chain: bool = False
    replay: str = NOT_REPLAYED  # landed | failed | not-replayed | damaged
    replay_message: str = ""
    hazards: list[HazardCheck] = field(default_factory=list)
    sql: str = ""  # the body as written (header removed)
    expanded_fingerprint: str | None = None  # two-part plans: the state between the parts


@dataclass
class TargetCheck:
    """Where the --target database stands relative to the plans."""

    url: str  # password-free host:port/dbname
    state: str  # head | pending | drift | no-plans | unreachable
    fingerprint: str | None = None
    postgres: int | None = None
    pending: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    """Everything `check` found; `exit_code` is the most severe finding's."""

    head: str | None = None
    models: str | None = None
    plans: list[PlanCheck] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    drift_sql: str | None = None  # head -> models, when they differ and SQL could be made
    drift_hazards: list[Hazard] = field(default_factory=list)
    drift_unexpressed: list[str] = field(default_factory=list)
    # True: drift_sql was applied to a copy of the head and landed on the models.
    drift_proven: bool = False
    target: TargetCheck | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """1 if any error, else 4 if any drift, else 3 if any unapproved hazard, else 0."""
        present = {f.severity for f in self.findings}
        return next((code for code in SEVERITY_ORDER if code in present), errors.OK)

    def ordered_findings(self) -> list[Finding]:
        """Findings, most severe first, then by file and line (the order annotations need)."""
        return sorted(
            self.findings,
            key=lambda f: (SEVERITY_ORDER.index(f.severity), f.file or "", f.line or 0),
        )

    def add(self, finding: Finding) -> None:
        """Record a finding."""
        self.findings.append(finding)


def run_check(
    config: Config,
    *,
    scratch: str | None = None,
    target: str | None = None,
    progress: Progress = lambda _msg: None,
    use_cache: bool = True,
) -> CheckResult:
    """Check plans, models, snapshot, hazards (and `target`, read-only); report all findings.

    Raises DeployError only when the check cannot run at all (no scratch server). With the
    models and plan files unchanged since a verified run (deploy.cache), no server is needed.
    """
    started = time.monotonic()
    start = EarlyScratch(scratch or config.scratch, config.postgres, image=config.docker_image,
                         roles=config.roles, progress=progress)
    try:
        return _run_check(config, start, started, target=target, progress=progress,
                          use_cache=use_cache)
    finally:
        start.close()  # a server started early and never used stops here


def _run_check(
    config: Config,
    start: EarlyScratch,
    started: float,
    *,
    target: str | None,
    progress: Progress,
    use_cache: bool,
) -> CheckResult:
    """run_check's work; `start` is the scratch server, begun here once it is sure to be
    needed (a cold cache), so it starts while the hazards are classified."""
    result = CheckResult()
    exclusions = config.exclusions

    plans, checks = _load(config, result)
    # A plan file that cannot be read may sit anywhere in the chain: while one exists, no
    # verdict that depends on the whole chain (orphans, models vs head, snapshot, target) is
    # given, since it would advise deleting or regenerating healthy plans.
    unreadable = [c.file for c in result.plans if c.replay == DAMAGED]
    graph = build_graph(plans)
    result.head = graph.head
    for plan in graph.chain:
        checks[plan.path].on_chain = True
    # Report the chain in order (filenames order nothing), then the plans off it.
    position = {checks[p.path].file: i for i, p in enumerate(graph.chain)}
    result.plans.sort(key=lambda c: (position.get(c.file, len(position)), c.file))
    _graph_findings(config, graph, checks, result, unreadable)
    for problem in railway.check_project(config.root):  # one pre-deploy command, or none
        result.add(Finding(errors.ERROR, "railway", "Railway pre-deploy command", problem,
                           file=railway.CONFIG_FILE))
    if not use_cache or not cache_knows_head(config, graph.chain):
        start.begin()  # the server (subprocesses) starts while Python classifies
    progress("classifying the hazards of every plan")
    unparseable = _hazard_findings(config, plans, checks, result, use_cache)

    desired = None
    try:
        desired = desired_state.load_desired(config)
    except DeployError as exc:
        result.add(Finding(errors.ERROR, "models", "Models do not load", exc.message))

    memo = cache.open_memo(config, desired, graph.chain, progress, use_cache=use_cache)
    known = None
    reverses_key = reverse.cache_key(config, graph.chain)
    if (memo is not None and graph.head is not None and not unparseable and not unreadable
            and not graph.problems()
            and cache.load_payload("reverses", reverses_key) == "proven"):
        known = memo.unchanged()
    if known is not None:
        head_state = _from_cache(config, graph, checks, known, result)
    else:
        with start as server, ThreadPoolExecutor(2) as pool:
            # New plans, same models: a cached state of the models that is the head is all
            # the models check needs (it is what a build would find).
            cached_models = (memo.models_at(graph.head)
                             if memo is not None and not unreadable else None)
            # Else the models are built while the chain replays: both are mostly server
            # work, independent of each other, and a scratch server has cores for both.
            built = (pool.submit(_build_models, server, desired, exclusions, progress)
                     if desired is not None and not unreadable and cached_models is None
                     else None)
            head_state = _replay_all(server, graph, checks, unparseable, exclusions, result,
                                     progress, unreadable)
            if memo is not None and head_state is not None and not unreadable:
                memo.save_head(head_state[1])
            # The ways back (deploy/reverse.py), once the chain lands, are proven beside the
            # models check: on their own copy of the replayed head (the models check still
            # reads it), consumed by the proof of the newest plan's reverse.
            ways_back = None
            if head_state is not None:
                server.create_database("reverse_head", template="base")
                ways_back = pool.submit(reverse.check_all, server, graph.chain, exclusions,
                                        progress, head_db="reverse_head")
            cached = cached_models if head_state else None
            if cached is not None:
                result.models = cached.fingerprint
                _snapshot_findings(config, cached.ddl, cached.description, result)
            elif desired is not None and not unreadable:
                if built is None:
                    built = pool.submit(_build_models, server, desired, exclusions, progress)
                models = _models_and_snapshot(config, server, graph, built, head_state,
                                              exclusions, result, progress)
                if memo is not None and models is not None:
                    memo.save_desired(*models)
            if ways_back is not None:
                before = len(result.findings)
                reverse.record_in_check(result, *ways_back.result())
                if memo is not None and len(result.findings) == before:
                    cache.store_payload("reverses", reverses_key, "proven")
    if unreadable:
        names = ", ".join(unreadable)
        result.notes.append(
            f"{names} cannot be read, so where the other plans sit in the chain is unknown: "
            "orphans, the models"
            + (", the snapshot and --target were" if target else " and the snapshot were")
            + " not checked. Repair that file first (see its error), then run `invoke check` "
            "again; do not delete or regenerate other plans because of this run."
        )
        result.seconds = time.monotonic() - started
        return result
    if target:
        head_desc = head_state[1] if head_state else None
        result.target = _check_target(config, graph, target, head_desc, exclusions, result,
                                      progress)
    result.seconds = time.monotonic() - started
    return result


def relative(config: Config, path: Path) -> str:
    """`path` relative to the project root, with '/' separators (as annotations need)."""
    try:
        return path.resolve().relative_to(config.root).as_posix()
    except ValueError:
        return path.as_posix()


# --- plan files and graph --------------------------------------------------------------------


def _load(config: Config, result: CheckResult) -> tuple[list[Plan], dict[Path, PlanCheck]]:
    """Parse every plan file; a damaged header is a finding, not the end of the check."""
    plans: list[Plan] = []
    checks: dict[Path, PlanCheck] = {}
    if not config.plans_dir.exists():
        return plans, checks
    if not config.plans_dir.is_dir():
        raise DeployError(f"The plans path {config.plans_dir} is not a directory.")
    for path in sorted(config.plans_dir.glob("*.sql")):
        try:
            plan = parse_plan(path)
        except DeployError as exc:
            name = relative(config, path)
            result.plans.append(PlanCheck(name, path.stem, None, None, replay=DAMAGED,
                                          replay_message=exc.message))
            result.add(Finding(errors.ERROR, "damaged", "Damaged plan file", exc.message,
                               file=name, line=exc.line))
            continue
        plans.append(plan)
        checks[path] = PlanCheck(
            relative(config, path), plan.name, plan.from_fingerprint, plan.to_fingerprint,
            sql=plan.body.strip("\n") + "\n", expanded_fingerprint=plan.expanded_fingerprint,
        )
        result.plans.append(checks[path])
    return plans, checks


def _graph_findings(
    config: Config, graph: PlanGraph, checks: dict[Path, PlanCheck], result: CheckResult,
    unreadable: list[str],
) -> None:
    """Forks, stray roots and orphans, each with what to do (plans.py words them).

    With an unreadable plan only forks are reported: a stray root or an orphan may just
    follow the file that cannot be read.
    """
    messages = iter(graph.problems())
    fork_points = {fp for fp, _ in graph.forks}
    for _, plans in graph.forks:
        newest = max(plans, key=lambda p: p.filename)
        result.add(Finding(errors.ERROR, "fork", "Fork: two plans start from one schema",
                           next(messages), file=relative(config, newest.path)))
    if len(graph.roots) > 1:
        message = next(messages)
        # Two first plans from the empty schema are already reported as a fork.
        if not {p.from_fingerprint for p in graph.roots} <= fork_points and not unreadable:
            result.add(Finding(errors.ERROR, "roots", "Several first plans", message,
                               file=relative(config, graph.roots[-1].path)))
    for plan in graph.orphans:
        if unreadable:
            checks[plan.path].replay_message = (
                f"not replayed: it may follow {', '.join(unreadable)}, which cannot be read")
            continue
        result.add(Finding(errors.ERROR, "orphan", "Orphan plan", next(messages),
                           file=relative(config, plan.path)))
        checks[plan.path].replay_message = "not replayed: no plan in the chain leads to its 'from'"


def _hazard_findings(
    config: Config, plans: list[Plan], checks: dict[Path, PlanCheck], result: CheckResult,
    use_cache: bool = True,
) -> set[Path]:
    """Classify each plan's body (never trusting its header); return plans that do not parse."""
    unparseable = set()
    for plan in plans:
        name = relative(config, plan.path)
        try:
            # Plan.body keeps the header's lines blank, so hazard lines are lines of the file.
            hazards = cache.classify(plan.body, use_cache=use_cache)
            verdict = review(plan.body, plan.approvals, hazards=hazards)  # as `apply` decides
        except StatementError as exc:
            unparseable.add(plan.path)
            message = (f"{name}:{exc.line}: PostgreSQL cannot parse the plan ({exc.reason}). Fix "
                       "the SQL, or restore the file from version control.")
            checks[plan.path].replay = DAMAGED
            checks[plan.path].replay_message = message
            result.add(Finding(errors.ERROR, "damaged", "Plan SQL does not parse", message,
                               file=name, line=exc.line))
            continue
        for hazard, approval in verdict.hazards:
            checks[plan.path].hazards.append(HazardCheck(
                hazard.kind, hazard.text, hazard.line, approval is not None,
                approval.reason if approval else None,
                plan.part_of_line(hazard.line) if plan.two_part else None,
            ))
            if approval is None:
                result.add(Finding(
                    errors.UNAPPROVED_HAZARD, "hazard", f"Unapproved hazard: {hazard.kind}",
                    f"{hazard.text} is not approved. If it is intended, a reviewer adds this "
                    f"line to the plan's header:\n-- approve: {hazard.text} -- <reason>",
                    file=name, line=hazard.line,
                ))
        found = {h.text.strip() for h, _ in verdict.hazards}
        for approval in verdict.unused:
            result.notes.append(
                f"{name}:{approval.line}: this approval matches no hazard in the plan's SQL "
                "(the statement may have been edited); remove it or fix its text."
            )
        for text in plan.hazards:
            if text.strip() not in found:
                result.notes.append(
                    f"{name}: the header lists the hazard '{text}', which its SQL no longer has."
                )
    return unparseable


# --- replay ----------------------------------------------------------------------------------


def _replay_all(
    server: ScratchServer,
    graph: PlanGraph,
    checks: dict[Path, PlanCheck],
    unparseable: set[Path],
    exclusions: Exclusions,
    result: CheckResult,
    progress: Progress,
    unreadable: list[str],
) -> tuple[URL, Description] | None:
    """Replay the chain from the empty schema, then each fork branch after it.

    Returns (url, description) of the head when the whole chain landed, else None.
    """
    chain = graph.chain
    stop = next((i for i, p in enumerate(chain) if p.path in unparseable), len(chain))
    found = len(result.findings)
    url, description, ok = _replay_into(server, "base", chain[:stop], checks, result, exclusions,
                                        progress)
    if (unreadable and chain[:stop] and checks[chain[0].path].replay == FAILED
            and fingerprint(_empty_description(server, exclusions)) != chain[0].from_fingerprint):
        # The chain's first readable plan does not start from the empty schema: the unreadable
        # file probably comes before it. That is not this plan's fault.
        del result.findings[found:]
        checks[chain[0].path].replay = NOT_REPLAYED
        ok = False
        why = f"not replayed: it may follow {', '.join(unreadable)}, which cannot be read"
    else:
        why = "not replayed: an earlier plan in the chain did not land"
    whole_chain = ok and stop == len(chain)
    for plan in chain:
        check = checks[plan.path]
        if check.replay == NOT_REPLAYED:
            check.replay_message = why
    # build_graph stops the chain at the first fork, so a fork starts where the chain ends.
    end = chain[-1].to_fingerprint if chain else (
        graph.roots[0].from_fingerprint if graph.roots else None)
    for number, (point, plans) in enumerate(graph.forks):
        for index, plan in enumerate(plans):
            if plan.path in unparseable:
                continue
            if point != end or not whole_chain:
                checks[plan.path].replay_message = (
                    "not replayed: the plans before the fork did not replay")
                continue
            # Each branch starts from a copy of the replayed chain, not from a rebuild of it.
            _replay_into(server, f"fork_{number}_{index}", [plan], checks, result, exclusions,
                         progress, template="base")
    # Orphans and stray roots start from a schema no replay reaches: they stay "not-replayed".
    for check in checks.values():
        if check.replay == NOT_REPLAYED and not check.replay_message:
            check.replay_message = "not replayed: it is not on the chain from the empty schema"
    return (url, description) if whole_chain and not graph.problems() else None


def _empty_description(server: ScratchServer, exclusions: Exclusions) -> Description:
    """The description of an empty database on the scratch server (what the chain starts from)."""
    return describe_url(server.create_database("empty_start"), exclusions)


def _replay_into(
    server: ScratchServer,
    dbname: str,
    plans: list[Plan],
    checks: dict[Path, PlanCheck],
    result: CheckResult,
    exclusions: Exclusions,
    progress: Progress,
    template: str | None = None,
) -> tuple[object, Description, bool]:
    """proof.replay, recorded on each plan's check: landed, or the finding where it failed."""
    replayed = replay(server, dbname, plans, exclusions, progress, template=template)
    for index, plan in enumerate(plans):
        check = checks[plan.path]
        if index < replayed.landed:
            check.replay, check.replay_message = LANDED, ""
        elif index == replayed.landed and replayed.failure:
            check.replay, check.replay_message = FAILED, replayed.failure
            result.add(Finding(errors.ERROR, "replay", "Plan does not land on its 'to'",
                               replayed.failure, file=check.file, line=replayed.failure_line))
    return replayed.url, replayed.description, replayed.failure is None


def _from_cache(
    config: Config,
    graph: PlanGraph,
    checks: dict[Path, PlanCheck],
    known: cache.Known,
    result: CheckResult,
) -> tuple[None, Description]:
    """What a replay and a build would find when models and head are cached and equal: every
    plan of the chain landed (its bytes were proven), no drift; the snapshot is still read."""
    for plan in graph.chain:
        checks[plan.path].replay, checks[plan.path].replay_message = LANDED, ""
    result.models = known.fingerprint
    _snapshot_findings(config, known.ddl, known.description, result)
    return None, known.description


# --- models and snapshot ---------------------------------------------------------------------


def _build_models(
    server: ScratchServer, desired: desired_state.DesiredSchema, exclusions: Exclusions,
    progress: Progress,
) -> tuple[URL, Description]:
    """Build the models into the scratch database "desired"; its URL and description."""
    progress("building the desired schema from the models")
    desired_url = server.create_database("desired")
    desired_state.build(desired, desired_url)
    return desired_url, describe_url(desired_url, exclusions)


def _models_and_snapshot(
    config: Config,
    server: ScratchServer,
    graph: PlanGraph,
    built: Future[tuple[URL, Description]],
    head_state: tuple[URL, Description] | None,
    exclusions: Exclusions,
    result: CheckResult,
    progress: Progress,
) -> tuple[Description, str] | None:
    """Models vs the head of the plans (drift), and schema.sql/json vs the head, once the
    models are `built` (_build_models).

    Returns the models' (description, full DDL) when it built them and they are the head."""
    try:
        desired_url, desired_desc = built.result()
    except DeployError as exc:
        result.add(Finding(errors.ERROR, "models", "Models do not build", exc.message,
                           details=exc.details))
        return None
    result.models = fingerprint(desired_desc)
    empty_url = server.create_database("empty")
    head = graph.head or fingerprint(describe_url(empty_url, exclusions))

    if graph.problems():
        matches = [p.filename for p in graph.plans if p.to_fingerprint == result.models]
        result.notes.append(
            "The models were not compared with a head: the plans do not form one chain. "
            + (f"The models match the schema after {', '.join(matches)}." if matches
               else "The models match no plan's 'to'.")
        )
        return None

    if result.models != head:
        progress("diffing the head of the plans against the models")
        base_url = empty_url if graph.head is None else (head_state[0] if head_state else None)
        base_name = "empty" if graph.head is None else "base"
        _drift(config, graph, base_url, desired_url, exclusions, result,
               prove_on=(server, base_name, desired_desc))

    if graph.head is None:
        return None
    # schema.sql shows the head; when the models equal the head they describe it too.
    if result.models == graph.head:
        reference_url, reference_desc = desired_url, desired_desc
    elif head_state:
        reference_url, reference_desc = head_state
    else:
        result.notes.append("schema/schema.sql was not checked: the head could not be replayed.")
        return None
    progress("comparing the snapshot files with the head")
    with connected(empty_url) as empty_conn, connected(reference_url) as head_conn:
        ddl = diff(empty_conn, head_conn, exclusions).sql
    _snapshot_findings(config, ddl, reference_desc, result)
    return (desired_desc, ddl) if reference_url == desired_url else None


def _snapshot_findings(
    config: Config, ddl: str, head_desc: Description, result: CheckResult
) -> None:
    """A drift finding for each snapshot file that differs from what the head requires."""
    for path in snapshot.stale_files(config, ddl, head_desc):
        name = relative(config, path)
        exists = "is missing" if not path.exists() else "differs from the head of the plans"
        result.add(Finding(
            errors.DRIFT, "snapshot", f"Stale {path.name}",
            f"{name} {exists}. It is generated: run `invoke plan` (with no model change it "
            "only rewrites the snapshot) and commit the result; do not edit it by hand.",
            file=name,
        ))


def _drift(
    config: Config,
    graph: PlanGraph,
    base_url: URL | None,
    desired_url: URL,
    exclusions: Exclusions,
    result: CheckResult,
    prove_on: tuple[ScratchServer, str, Description] | None = None,
) -> None:
    """The 'unreviewed drift' finding, with the SQL from the head to the models if possible.

    The SQL goes through the same proof as a plan (applied to a copy of the head); when it
    does not land, the finding says plainly that it is unproven and what it misses.
    """
    details = ""
    if base_url is not None:
        with connected(base_url) as base_conn, connected(desired_url) as desired_conn:
            change = diff(base_conn, desired_conn, exclusions, online=config.online)
        result.drift_sql = change.sql
        result.drift_unexpressed = [str(d) for d in change.unexpressed]
        if change.sql:
            try:
                result.drift_hazards = classify(change.sql)
            except StatementError:
                result.drift_hazards = []
        details = change.sql or ("Differences with no generated SQL:\n"
                                 + format_differences(change.unexpressed))
        if change.sql and prove_on is not None:
            server, base_name, desired_desc = prove_on
            try:
                residual = prove(server, change.sql, desired_desc, exclusions, "drift",
                                 template=base_name)
                problem = ("it does not reach the models exactly:\n"
                           + format_differences(residual)) if residual else ""
            except DeployError as exc:
                problem = exc.message
            result.drift_proven = not problem
            if problem:
                details = ("UNPROVEN SQL: applied to a copy of the head, " + problem
                           + "\n`invoke plan` refuses to write it; finish it by hand and pass "
                           "it with --sql-file.\n\n" + change.sql)
    where = (f"the head of the plans ({short(graph.head)})" if graph.head
             else "the empty schema (there are no plans yet)")
    result.add(Finding(
        errors.DRIFT, "drift", "Unreviewed drift: models differ from the plans",
        f"Unreviewed drift: the models ({short(result.models)}) differ from {where}. "
        f"{_RUN_PLAN} to write the change as a plan, review its hazards, and commit it "
        f"together with {relative(config, config.snapshot)}.",
        details=details,
    ))


# --- target ----------------------------------------------------------------------------------


def _check_target(
    config: Config,
    graph: PlanGraph,
    target: str,
    head_desc: Description | None,
    exclusions: Exclusions,
    result: CheckResult,
    progress: Progress,
) -> TargetCheck:
    """Fingerprint the target read-only and place it on the chain: head, pending or drift."""
    try:
        url = urls.parse_url(target)
    except DeployError as exc:
        result.add(Finding(errors.ERROR, "target", "Bad --target", exc.message))
        return TargetCheck(urls.mask(target), "unreachable")
    where = urls.describe(url)
    progress(f"fingerprinting {where} (read-only)")
    try:
        conn = target_db.connect(url, wait=10, read_only=True, progress=progress)
    except DeployError as exc:
        result.add(Finding(errors.ERROR, "target", "Cannot connect to --target", exc.message))
        return TargetCheck(where, "unreachable")
    try:
        major = target_db.server_major(conn)
        conn.autocommit = True
        position.guard_reads(conn)
        with position.reading(conn, where):
            found = position.locate(conn, config, graph)
    except DeployError as exc:
        result.add(Finding(errors.ERROR, "target", "Cannot read --target", exc.message))
        return TargetCheck(where, "unreachable")
    finally:
        conn.close()
    check = TargetCheck(where, "no-plans", found.live_fingerprint, major)
    if major != config.postgres:
        result.notes.append(
            f"{where} runs PostgreSQL {major} but the plans are verified on {config.postgres} "
            "([tool.deploy] postgres)."
        )
    if found.state == position.NO_PLANS:
        return check
    if found.state == position.DRIFTED:
        check.state = "drift"
        differences = position.differences(config, graph, found.live, head_desc)
        check.differences = position.summarise(differences or [])
        result.add(Finding(
            errors.DRIFT, "target-drift", "Target database has drifted",
            position.drift_message(where, found.live_fingerprint, graph.head),
            details="\n".join(check.differences[:40]),
        ))
    elif found.path:
        # Part-way through a resumable plan is not drift: apply resumes it. Nor is the state
        # between a plan's two parts: a later deploy runs its contract part.
        check.state = "pending"
        check.pending = found.pending
        if found.resume is not None or found.contract is not None:
            result.notes.append(f"{where} is {found.matches}.")
    elif found.state == position.AHEAD:  # reached through reviewed plans: not drift
        check.state = "ahead"
        result.notes.append(f"{where} is {found.matches}.")
    else:
        check.state = "head"
    return check
