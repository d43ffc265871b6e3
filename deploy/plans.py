"""Plan files (reviewed SQL with a fingerprint header) and the graph they form.

A plan file is plain SQL whose leading `--` comment lines are its header:

    -- plan: add deck tags
    -- from: sha256:<64 hex>
    -- to:   sha256:<64 hex>
    -- postgres: 15
    -- hazard: DELETES_DATA drop column "public"."users"."legacy_score"
    -- approve: DELETES_DATA drop column "public"."users"."legacy_score" -- backfilled into xp

Plans are linked by fingerprints, not by file names: the first starts from the empty
schema, each next one from the previous one's `to`.

A plan may have two parts (expand / contract, for Railway's overlapping deploys): the header
then has `-- expanded: sha256:<64 hex>` (the state between the parts) and the body a line
that is exactly `-- phase: contract`. What is above that line is the expand part, run by
the deploy that ships the new code; what is below runs in a later deploy, when no code
that needs what it drops is still serving. A plan without the line has one part.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from deploy.errors import DeployError
from deploy.hazards.model import BACKWARD_INCOMPATIBLE, Approval, Hazard

_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEADER_KEY = re.compile(
    r"^--\s*(plan|from|to|expanded|postgres|hazard|approve)\s*:\s?(.*)$"
)
# The body line that starts a plan's contract part (compared after stripping whitespace).
CONTRACT_MARKER = "-- phase: contract"
_PHASE_PREFIX = "-- phase:"
# Free comment lines render_plan writes above the hazards of each part of a two-part plan.
EXPAND_HAZARDS = ("-- Expand part (runs in the deploy that ships the new code, while the old "
                  "code still serves):")
CONTRACT_HAZARDS = "-- Contract part (runs in the next deploy, after the new code is live):"
# Prefix of the free comment that lists a contract-part BACKWARD_INCOMPATIBLE hazard, which
# its placement satisfies (deploy/hazards/approval.py): not a `-- hazard:` line to approve.
PLACED = "-- no approval needed, runs after the old code is gone:"


@dataclass(frozen=True)
class Plan:
    """One plan file, parsed."""

    path: Path
    name: str
    from_fingerprint: str
    to_fingerprint: str
    postgres: int
    hazards: tuple[str, ...]
    approvals: tuple[Approval, ...]
    text: str
    header_lines: int
    # Fingerprint between the expand and the contract part; None for a one-part plan.
    expanded_fingerprint: str | None = None
    # 1-based file line of the CONTRACT_MARKER; None for a one-part plan.
    contract_line: int | None = None

    @property
    def filename(self) -> str:
        """The file's name, which is how history and messages refer to the plan."""
        return self.path.name

    @property
    def body(self) -> str:
        """The SQL after the header, with the header's lines blanked so line numbers hold."""
        lines = self.text.split("\n")
        return "\n" * self.header_lines + "\n".join(lines[self.header_lines :])

    @property
    def two_part(self) -> bool:
        """True when the plan has an expand and a contract part."""
        return self.contract_line is not None

    @property
    def expand_body(self) -> str:
        """The SQL the first deploy runs: the body above the contract marker (all of it for a
        one-part plan). Line numbers hold, like `body`."""
        if self.contract_line is None:
            return self.body
        return "\n".join(self.body.split("\n")[: self.contract_line - 1])

    @property
    def contract_body(self) -> str:
        """The SQL a later deploy runs (empty for a one-part plan), with every line above it
        blanked so that line numbers still match the file."""
        if self.contract_line is None:
            return ""
        lines = self.text.split("\n")
        return "\n" * (self.contract_line - 1) + "\n".join(lines[self.contract_line - 1 :])

    def part_of_line(self, line: int) -> str:
        """'expand' or 'contract': the part a 1-based file line belongs to."""
        if self.contract_line is not None and line > self.contract_line:
            return "contract"
        return "expand"

    @property
    def sha256(self) -> str:
        """sha256 of the whole file as it is on disk; recorded when applied."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def parse_plan(path: Path) -> Plan:
    """Read and check a plan file; raise DeployError naming the file and line when damaged."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DeployError(f"Cannot read plan file {path}: {exc.strerror or exc}.") from None
    return parse_plan_text(path, clean_text(path, data))


def parse_plan_text(path: Path, text: str) -> Plan:
    """Parse plan text as if read from `path` (e.g. a reverse recorded in the history table)."""
    values: dict[str, str] = {}
    hazards: list[str] = []
    approvals: list[Approval] = []
    header_lines = 0
    lines = text.split("\n")
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        # The body may open with a phase line; with an empty expand part the contract
        # marker itself follows the header's comments: either ends the header.
        if line.startswith(_PHASE_PREFIX):
            break
        if not line.startswith("--"):
            if line:
                break
            header_lines = number
            continue
        header_lines = number
        match = _HEADER_KEY.match(line)
        if not match:
            continue  # a free comment in the header is allowed
        key, value = match.group(1), match.group(2).strip()
        if key == "hazard":
            hazards.append(value)
        elif key == "approve":
            text_part, _, reason = value.partition(" -- ")
            approvals.append(Approval(text_part.strip(), reason.strip() or None, number))
        elif key in values:
            _damaged(path, number, f"'{key}:' appears twice")
        else:
            values[key] = value
    for key in ("from", "to", "postgres"):
        if key not in values:
            _damaged(path, None, f"the '-- {key}:' line is missing")
    for key in ("from", "to", "expanded"):
        if key in values and not _FINGERPRINT.match(values[key]):
            _damaged(
                path, _line_of(lines, key), f"'{key}:' must be sha256: and 64 hex digits, "
                f"found {values[key]!r}"
            )
    if not re.fullmatch(r"[0-9]{1,4}", values["postgres"]):  # isdigit() accepts '²'
        _damaged(path, _line_of(lines, "postgres"), "'postgres:' must be a major version number")
    markers = [
        number
        for number, raw in enumerate(lines, start=1)
        if number > header_lines and raw.strip() == CONTRACT_MARKER
    ]
    if len(markers) > 1:
        _damaged(path, markers[1], f"'{CONTRACT_MARKER}' appears twice")
    if markers and "expanded" not in values:
        _damaged(path, markers[0], "the body has a contract part but the '-- expanded:' line "
                 "is missing")
    if "expanded" in values and not markers:
        _damaged(path, _line_of(lines, "expanded"), f"'expanded:' is set but the body has no "
                 f"'{CONTRACT_MARKER}' line")
    return Plan(
        path=path,
        name=values.get("plan", path.stem),
        from_fingerprint=values["from"],
        to_fingerprint=values["to"],
        postgres=int(values["postgres"]),
        hazards=tuple(hazards),
        approvals=tuple(approvals),
        text=text,
        header_lines=header_lines,
        expanded_fingerprint=values.get("expanded"),
        contract_line=markers[0] if markers else None,
    )


# Characters a reviewer cannot see but the parser acts on: C0 controls other than tab,
# LF and CR (a NUL ends the SQL libpq sends, silently dropping the rest of the file), DEL,
# C1 controls, the bidirectional controls that make text display in another order than it
# runs ("Trojan Source"), and zero-width spaces / byte order marks (an identifier that looks
# like another one).
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e"
    "\u2060\u2066-\u2069\ufeff]"
)


def clean_text(path: Path, data: bytes, kind: str = "Plan file") -> str:
    """`data` decoded as UTF-8, or a DeployError naming the line and byte offset of the first
    byte that is not clean text (invalid UTF-8, control or bidi-override characters)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _unclean(kind, path, data, exc.start, f"byte 0x{data[exc.start]:02x} is not valid UTF-8")
    match = _INVISIBLE.search(text)
    if match:
        offset = len(text[: match.start()].encode("utf-8"))
        character = f"U+{ord(match.group()):04X}"
        _unclean(kind, path, data, offset, f"it contains the invisible character {character}")
    return text


def _unclean(kind: str, path: Path, data: bytes, offset: int, what: str) -> NoReturn:
    line = data.count(b"\n", 0, offset) + 1
    raise DeployError(
        f"{kind} {path}:{line} is not clean UTF-8 text: {what} (byte offset {offset}). "
        "PostgreSQL would not run what a reviewer sees (everything after a NUL byte is dropped, "
        "and GitHub shows such a file as binary), so the file is refused. Restore it from "
        "version control, or remove the character with an editor that shows it.",
        line=line,
    )


def _line_of(lines: list[str], key: str) -> int | None:
    for number, raw in enumerate(lines, start=1):
        match = _HEADER_KEY.match(raw.strip())
        if match and match.group(1) == key:
            return number
    return None


def _damaged(path: Path, line: int | None, what: str) -> NoReturn:
    where = f"{path}:{line}" if line else str(path)
    raise DeployError(
        f"Plan file {where} has a damaged header: {what}. Restore the header from version "
        "control (git diff shows what changed), or delete the file and run `invoke plan` again.",
        line=line,
    )


def load_plans(plans_dir: Path) -> list[Plan]:
    """Parse every `*.sql` in the plans directory (an absent directory means no plans yet)."""
    if not plans_dir.exists():
        return []
    if not plans_dir.is_dir():
        raise DeployError(f"The plans path {plans_dir} is not a directory.")
    return [parse_plan(p) for p in sorted(plans_dir.glob("*.sql"))]


def load_chain(plans_dir: Path, *, required: bool = False) -> PlanGraph:
    """Parse and order the plans; forks, orphans and stray roots are a DeployError.

    With `required`, a missing directory is an error (apply, status), not "no plans yet".
    """
    if required:
        require_plans_dir(plans_dir)
    graph = build_graph(load_plans(plans_dir))
    problems = graph.problems()
    if problems:
        raise DeployError(" ".join(problems))
    return graph


def require_plans_dir(plans_dir: Path) -> None:
    """Raise a clear error when the plans directory is missing (apply can't do without it)."""
    if not plans_dir.is_dir():
        raise DeployError(
            f"The plans directory {plans_dir} does not exist. Run from the project root (or set "
            "[tool.deploy] plans), and make sure the plan files are part of the deployed image."
        )


@dataclass
class PlanGraph:
    """Plans keyed by fingerprint: the chain from the empty schema to the head."""

    plans: list[Plan]
    chain: list[Plan] = field(default_factory=list)
    forks: list[tuple[str, list[Plan]]] = field(default_factory=list)
    orphans: list[Plan] = field(default_factory=list)
    roots: list[Plan] = field(default_factory=list)

    @property
    def head(self) -> str | None:
        """Fingerprint at the end of the chain, or None when there are no plans."""
        return self.chain[-1].to_fingerprint if self.chain else None

    @property
    def start(self) -> str | None:
        """Fingerprint the first plan starts from (the empty schema)."""
        return self.chain[0].from_fingerprint if self.chain else None

    def problems(self) -> list[str]:
        """Forks, orphans and extra roots, each as one sentence that says what to do."""
        out = []
        for fingerprint, plans in self.forks:
            names = ", ".join(p.filename for p in plans)
            out.append(
                f"Fork: {len(plans)} plans start from the same schema ({short(fingerprint)}): "
                f"{names}. Two branches each added a plan. Keep the one that landed first on "
                "main, delete the other(s), then run `invoke plan` to regenerate the change "
                "on top of it."
            )
        if len(self.roots) > 1:
            names = ", ".join(p.filename for p in self.roots)
            out.append(
                f"Several plans start from a schema no other plan leads to: {names}. Only the "
                "first plan may start from the empty schema; delete the stray plan(s) and run "
                "`invoke plan` again."
            )
        for plan in self.orphans:
            out.append(
                f"Orphan: {plan.filename} starts from {short(plan.from_fingerprint)}, which no "
                "plan in the chain reaches. Delete it and run `invoke plan` to regenerate it."
            )
        return out

    def path(self, fingerprint: str) -> list[Plan] | None:
        """Plans that take a database at `fingerprint` to the head, in order (shortest path).

        [] when it is at the head; None when `fingerprint` is not on the chain (drift).
        """
        if self.head is None:
            return None
        if fingerprint == self.head:
            return []
        edges: dict[str, list[Plan]] = {}
        for plan in self.chain:
            edges.setdefault(plan.from_fingerprint, []).append(plan)
        queue: deque[tuple[str, list[Plan]]] = deque([(fingerprint, [])])
        seen = {fingerprint}
        while queue:
            node, route = queue.popleft()
            for plan in edges.get(node, []):
                if plan.to_fingerprint == self.head:
                    return [*route, plan]
                if plan.to_fingerprint not in seen:
                    seen.add(plan.to_fingerprint)
                    queue.append((plan.to_fingerprint, [*route, plan]))
        return None

    def known(self, fingerprint: str) -> bool:
        """True when some plan in the chain starts or ends at `fingerprint`."""
        return any(fingerprint in (p.from_fingerprint, p.to_fingerprint) for p in self.chain)


def build_graph(plans: Iterable[Plan]) -> PlanGraph:
    """Order plans into the chain from the empty schema; collect forks and orphans."""
    plans = list(plans)
    graph = PlanGraph(plans)
    targets = {p.to_fingerprint for p in plans}
    graph.roots = [p for p in plans if p.from_fingerprint not in targets]
    outgoing: dict[str, list[Plan]] = {}
    for plan in plans:
        outgoing.setdefault(plan.from_fingerprint, []).append(plan)
    if not plans:
        return graph
    if len(graph.roots) == 1:
        trail = _full_trail(graph.roots[0].from_fingerprint, outgoing, len(plans))
        if trail is not None:
            # Every plan lies on one walk from the empty schema: a chain that returns to an
            # earlier schema (add a column, later drop it) is not a fork.
            graph.chain = trail
            return graph
    graph.forks = [(fp, ps) for fp, ps in sorted(outgoing.items()) if len(ps) > 1]
    # Start from the single root; a chain that returns to an earlier schema (add, then drop)
    # is fine: walk each plan once, always taking the one unused plan leaving the node.
    if len(graph.roots) == 1:
        node = graph.roots[0].from_fingerprint
    else:
        node = sorted(plans, key=lambda p: p.filename)[0].from_fingerprint
    used: set[Path] = set()
    while True:
        unused = [p for p in outgoing.get(node, []) if p.path not in used]
        if len(unused) != 1:
            break
        plan = unused[0]
        used.add(plan.path)
        graph.chain.append(plan)
        node = plan.to_fingerprint
    graph.orphans = [
        p for p in plans if p.path not in used and not any(p in ps for _, ps in graph.forks)
        and p not in graph.roots[1:]
    ]
    return graph


def _full_trail(start: str, outgoing: dict[str, list[Plan]], total: int) -> list[Plan] | None:
    """The walk from `start` that uses every plan once (filename order breaks ties), or None.

    Depth-first with backtracking: at a schema two plans leave, the one that later comes
    back is taken first. Two branches that never meet again (a real fork) have no such walk.
    """
    ordered = {fp: sorted(ps, key=lambda p: p.filename) for fp, ps in outgoing.items()}
    used: set[Path] = set()
    trail: list[Plan] = []
    stack = [iter(ordered.get(start, []))]  # one iterator of untried plans per schema visited
    budget = 20_000  # guards against pathological graphs: give up, report a fork instead
    while stack and budget > 0:
        if len(trail) == total:
            return trail
        budget -= 1
        plan = next((p for p in stack[-1] if p.path not in used), None)
        if plan is not None:
            used.add(plan.path)
            trail.append(plan)
            stack.append(iter(ordered.get(plan.to_fingerprint, [])))
            continue
        stack.pop()  # dead end: step back and try the next plan at the previous schema
        if trail:
            used.discard(trail.pop().path)
    return trail if len(trail) == total else None


def short(fingerprint: str | None) -> str:
    """First 12 hex digits of a fingerprint, for messages."""
    if not fingerprint:
        return "(none)"
    return fingerprint.removeprefix("sha256:")[:12]


def slugify(name: str) -> str:
    """File-name-safe form of a plan name: 'Add deck tags!' -> 'add_deck_tags'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    return slug[:60] or "change"


def render_plan(
    name: str,
    from_fingerprint: str,
    to_fingerprint: str,
    postgres: int,
    hazards: Iterable[Hazard],
    body: str,
    *,
    expanded: str | None = None,
) -> str:
    """The text of a new plan file: header, then the SQL.

    With `expanded` (a two-part plan; `body` holds the CONTRACT_MARKER line and `hazards`
    carry lines of `body`), the header gets `-- expanded:` and lists the hazards per part;
    a BACKWARD_INCOMPATIBLE hazard of the contract part is shown but needs no approval."""
    header = [
        # A control character in the name would make the file one that parse_plan refuses.
        f"-- plan: {' '.join(_INVISIBLE.sub(' ', name).split())}",
        f"-- from: {from_fingerprint}",
        f"-- to:   {to_fingerprint}",
    ]
    if expanded is not None:
        header.append(f"-- expanded: {expanded}")
    header.append(f"-- postgres: {postgres}")
    hazard_list = list(hazards)
    marker = next((n for n, line in enumerate(body.split("\n"), start=1)
                   if line.strip() == CONTRACT_MARKER), None) if expanded else None
    placed = [h for h in hazard_list
              if marker is not None and h.line > marker and h.kind == BACKWARD_INCOMPATIBLE]
    to_approve = [h for h in hazard_list if h not in placed]
    if to_approve:
        header.append(
            "-- Each hazard needs a reviewer's approval: copy its line, change 'hazard' to "
            "'approve', add ' -- <reason>'."
        )
    if marker is None:
        header += [f"-- hazard: {hazard.text}" for hazard in to_approve]
    else:
        early = [h for h in to_approve if h.line < marker]
        late = [h for h in to_approve if h.line > marker]
        if early:
            header += [EXPAND_HAZARDS, *(f"-- hazard: {h.text}" for h in early)]
        if late or placed:
            header += [CONTRACT_HAZARDS, *(f"-- hazard: {h.text}" for h in late),
                       *(f"{PLACED} {h.text}" for h in placed)]
    return "\n".join(header) + "\n\n" + body.strip() + "\n"


def new_plan_path(plans_dir: Path, name: str, now: datetime | None = None) -> Path:
    """`<plans>/<UTC yyyymmddThhmmssZ>_<slug>.sql`, never overwriting an existing file."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    path = plans_dir / f"{stamp}_{slugify(name)}.sql"
    counter = 2
    while path.exists():
        path = plans_dir / f"{stamp}_{slugify(name)}_{counter}.sql"
        counter += 1
    return path
