"""A content-addressed cache of schema descriptions, so an unchanged `plan`/`check` needs no
scratch server.

Two kinds of entries, each keyed by a sha256 of everything its value is a function of:

* **desired**: the models' description, fingerprint and full DDL (for `schema.sql`), keyed
  by the models' compiled DDL (as `create_all` would emit it, compiled without a server),
  the `sql/*.sql` files' bytes, the extensions, the PostgreSQL major, the exclusions and the
  tool's version: the source of the `deploy` modules that compute cached answers (found from
  the imports of the modules that use this cache; see answer_modules) and the versions of
  the libraries it builds on. Editing another module (a message in status.py) keeps them.
* **head**: the description after replaying the chain of plans, keyed by the plan files'
  bytes in chain order (plus major, exclusions and tool version). Written only after a
  replay in which every plan landed on its `to`, so it records which plan bytes are proven.

A cache may make a command faster, never its answer different: every entry carries its key
and a checksum of its value, and a description must still hash to its fingerprint; an entry
that fails any of these is ignored (and removed). Writes are atomic (temp file + rename).
Location: `$SCHEMA_DEPLOY_CACHE_DIR`, else `$XDG_CACHE_HOME/schema-deploy`, else
`~/.cache/schema-deploy`; `--no-cache` bypasses it; deleting the directory clears it.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from deploy import renames
from deploy.config import Config
from deploy.desired import DesiredSchema, compile_models
from deploy.fingerprint import Description, fingerprint
from deploy.hazards import Hazard
from deploy.plans import Plan

# Bump when the layout or meaning of entries changes; old entries are then never read.
FORMAT = 2
# Entries kept per kind (least recently used go first); one per model or plan state.
KEEP = 32
ENV_DIR = "SCHEMA_DEPLOY_CACHE_DIR"
# Libraries whose version can change a description or a DDL text: import name -> distribution.
_PACKAGES = {
    "sqlalchemy": "sqlalchemy",
    "migra": "migra",
    "schemainspect": "schemainspect",
    "psycopg2": "psycopg2-binary",
    "pglast": "pglast",
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Known:
    """A schema state read from the cache: its description, fingerprint and (desired) DDL."""

    fingerprint: str
    description: Description
    ddl: str = ""


def cache_dir() -> Path:
    """The cache root: $SCHEMA_DEPLOY_CACHE_DIR, else $XDG_CACHE_HOME/schema-deploy (~/.cache)."""
    override = os.environ.get(ENV_DIR)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "schema-deploy"


@cache
def tool_version() -> str:
    """sha256 of the engine source that computes cached answers (answer_modules) and of its
    libraries' versions: any change to those is a new key."""
    digest = hashlib.sha256(f"format {FORMAT}\n".encode())
    digest.update(_engine_digest(Path(__file__).resolve().parent).encode() + b"\n")
    for package_name in _PACKAGES:
        digest.update(f"{package_name}={_installed_version(package_name)}\n".encode())
    return digest.hexdigest()


def source_digest(package: Path, files: list[tuple[str, str | None, bytes]] | None = None
                  ) -> str:
    """sha256 of the paths and bytes of the package's answer_modules, and of every file in it
    that is not Python (data the code may read). Editing any other module keeps it."""
    files = _package_files(package) if files is None else files
    keep = answer_modules(package.name, {module: data for _, module, data in files if module})
    digest = hashlib.sha256()
    for relative, module, data in files:
        if module is None or module in keep:
            digest.update(relative.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


def answer_modules(package: str, sources: dict[str, bytes]) -> set[str]:
    """The modules whose code can change what the cache stores: this one, every module that
    reads or writes the cache (the ones importing it), and every package module these
    import, transitively — also imports inside functions, so a new module that matters is
    found, never forgotten in a list. Presentation (status, report, cli, …) stays out."""
    imports = {name: _imported(name, data, package, sources) for name, data in sources.items()}
    me = f"{package}.cache"
    todo = [me, *(name for name, found in imports.items() if me in found)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen and name in sources:
            seen.add(name)
            todo.extend(imports[name])
    return seen


def _imported(module: str, data: bytes, package: str, known: dict[str, bytes]) -> set[str]:
    """The package's modules that a module's source imports anywhere (inside functions too),
    with the packages on their path (their __init__ runs too)."""
    found: set[str] = set()
    for node in _statements(ast.parse(data).body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                is_package = any(name.startswith(module + ".") for name in known)
                parts = module.split(".")
                parts = parts[: len(parts) - node.level + is_package]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    result = set()
    for name in found:
        parts = name.split(".")
        if parts[0] == package:
            result.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return result & known.keys()


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement, nested ones included (an import is always a statement: walking the
    expressions too would cost five times as much)."""
    for statement in body:
        yield statement
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            nested = getattr(statement, field, None)
            if isinstance(nested, list):
                yield from _statements(nested)


def _package_files(package: Path) -> list[tuple[str, str | None, bytes]]:
    """(path in the package, module name or None when not Python, bytes) of every file."""
    files = []
    for path in sorted(package.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(package)
        module = None
        if path.suffix == ".py":
            parts = [package.name, *relative.with_suffix("").parts]
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files.append((relative.as_posix(), module, path.read_bytes()))
    return files


def _engine_digest(package: Path) -> str:
    """source_digest(package), remembered under the digest of the whole tree's bytes: reading
    the imports of ~90 modules costs ~65 ms a process, hashing their bytes ~2 ms."""
    files = _package_files(package)
    whole = hashlib.sha256()
    for relative, _, data in files:
        whole.update(relative.encode() + b"\0" + data + b"\0")
    key = whole.hexdigest()
    known = load_payload("engine", key)
    if isinstance(known, str):
        return known
    narrowed = source_digest(package, files)
    store_payload("engine", key, narrowed)
    return narrowed


def _installed_version(package_name: str) -> str:
    """The `*.dist-info` folder names next to an installed package (they carry the version),
    found without importing it or importlib.metadata (both cost more than the whole lookup)."""
    spec = importlib.util.find_spec(package_name)
    if spec is None or not spec.origin:
        return "-"
    site = Path(spec.origin).resolve().parent.parent
    dist = _PACKAGES[package_name].lower().replace("-", "_")
    try:
        names = sorted(
            entry.name for entry in os.scandir(site)
            if entry.name.lower().replace("-", "_").startswith(dist + "_")
            and entry.name.endswith((".dist-info", ".egg-info"))
        )
    except OSError:
        names = []
    # Not installed from a distribution (a source checkout): its path is all we know.
    return ",".join(names) or spec.origin


def compiled_models(desired: DesiredSchema, major: int) -> list[str]:
    """The DDL `create_all` would send for the models, compiled for PostgreSQL `major` without
    a server (desired.compile_models: compiled once, the build runs the same statements)."""
    return list(compile_models(desired, major).statements)


def _key(kind: str, config: Config | None, parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    header: dict[str, object] = {"kind": kind, "tool": tool_version()}
    if config is not None:
        header.update(
            postgres=config.postgres,
            exclude_schemas=list(config.exclusions.schemas),
            exclude_tables=list(config.exclusions.tables),
        )
    digest.update(json.dumps(header, sort_keys=True).encode() + b"\0")
    for part in parts:
        # Length-prefixed, so no two different part lists hash alike.
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def desired_key(config: Config, desired: DesiredSchema) -> str:
    """Key of the desired state: compiled models, extensions, sql files' names and bytes,
    renamed_from hints."""
    parts = [b"models"]
    parts += [s.encode() for s in compiled_models(desired, config.postgres)]
    parts += [b"extensions"] + [e.encode() for e in desired.extensions]
    parts += [b"sql", *_sql_files(desired)]
    # The hints change the plan, not the models' DDL: a changed hint must compute again.
    parts += renames.cache_parts(desired.renames)
    return _key("desired", config, parts)


def _sql_files(desired: DesiredSchema) -> list[bytes]:
    parts = []
    for path in desired.sql_files:
        parts += [path.name.encode(), path.read_bytes()]
    return parts


def head_key(config: Config, chain: Sequence[Plan]) -> str:
    """Key of the head state: the chain's plan texts (as parsed, so as replayed), in order."""
    return _key("head", config, [b"plans", *(p.text.encode("utf-8") for p in chain)])


def _squawk_version() -> str:
    """Which squawk binary hazards would run (as hazards.py finds it), by path, size, mtime."""
    import shutil
    import sys

    beside = Path(sys.executable).with_name("squawk")
    path = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which(
        "squawk")
    if path is None:
        return "none"
    try:
        stat = os.stat(path)
    except OSError:
        return "none"
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def classify(sql: str, *, use_cache: bool = True) -> list[Hazard]:
    """hazards.classify(sql), remembered by the text, the tool's version and squawk's: an
    unchanged plan is not parsed and linted again. Raises StatementError like classify."""
    from deploy.hazards import classify as classify_now

    if not use_cache:
        return classify_now(sql)
    try:
        key = _key("hazards", None, [_squawk_version().encode(), sql.encode("utf-8")])
    except OSError:  # the tool's own files unreadable: no cache, same answer
        return classify_now(sql)
    payload = load_payload("hazards", key)
    if isinstance(payload, list):
        try:
            return [Hazard(kind, text, line) for kind, text, line in payload]
        except (TypeError, ValueError):
            pass  # written by a tool whose Hazard had another shape: compute again
    hazards = classify_now(sql)
    store_payload("hazards", key, [[h.kind, h.text, h.line] for h in hazards])
    return hazards


def remember_hazards(sql: str, hazards: Sequence[Hazard]) -> None:
    """Record `hazards` as classify(`sql`)'s answer (the caller computed exactly that)."""
    try:
        key = _key("hazards", None, [_squawk_version().encode(), sql.encode("utf-8")])
    except OSError:
        return
    store_payload("hazards", key, [[h.kind, h.text, h.line] for h in hazards])


# --- entries -----------------------------------------------------------------------------


def _entry_path(kind: str, key: str) -> Path:
    return cache_dir() / f"v{FORMAT}" / kind / f"{key}.json"


def _checksum(kind: str, key: str, payload: bytes) -> str:
    # Over the payload's bytes as stored: hashing them is far cheaper than re-serialising.
    return hashlib.sha256(f"{kind}\0{key}\0".encode() + payload).hexdigest()


def load(kind: str, key: str) -> Known | None:
    """The state stored under `key`, or None when absent, unreadable, corrupted, not for this
    key, or when its description does not hash to its fingerprint."""
    known = _known(load_payload(kind, key))
    if known is None:
        _discard(_entry_path(kind, key))
    return known


def load_payload(kind: str, key: str) -> object | None:
    """The JSON value stored under `key`, or None (absent, unreadable, checksum or key wrong)."""
    # An entry is one header line (format, kind, key, checksum), then the payload's JSON.
    path = _entry_path(kind, key)
    try:
        header_line, _, payload_bytes = path.read_bytes().partition(b"\n")
        header = json.loads(header_line)
        valid = (
            isinstance(header, dict) and header.get("format") == FORMAT
            and header.get("key") == key
            and header.get("checksum") == _checksum(kind, key, payload_bytes)
        )
        payload = json.loads(payload_bytes) if valid else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        valid = False
    if not valid:
        _discard(path)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # least recently used entries are pruned first
    return payload


def _known(payload: object) -> Known | None:
    if not isinstance(payload, dict):
        return None
    description, fp, ddl = payload.get("description"), payload.get("fingerprint"), payload.get(
        "ddl", "")
    if not isinstance(description, dict) or not isinstance(ddl, str) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in description.items()
    ):
        return None
    # The description must still be the state it claims to be.
    if fingerprint(description) != fp:
        return None
    return Known(fp, description, ddl)


def store(kind: str, key: str, known: Known) -> None:
    """Store a schema state under `key` (see store_payload)."""
    store_payload(kind, key, {"fingerprint": known.fingerprint,
                              "description": known.description, "ddl": known.ddl})


def store_payload(kind: str, key: str, payload: object) -> None:
    """Write a JSON value atomically, with its key and checksum; a failure only costs speed,
    so it is silent."""
    payload_bytes = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    header = {"format": FORMAT, "kind": kind, "key": key,
              "checksum": _checksum(kind, key, payload_bytes)}
    path = _entry_path(kind, key)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(json.dumps(header).encode() + b"\n" + payload_bytes)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _prune(path.parent)


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        _discard(old)


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


# --- what the commands use ---------------------------------------------------------------


class Memo:
    """The cache as one command sees it: keys computed once, lookups, and writes."""

    def __init__(self, config: Config, desired: DesiredSchema | None, chain: Sequence[Plan],
                 progress: Progress) -> None:
        self._progress = progress
        self._desired = desired
        self.head_key = head_key(config, chain)
        self.desired_key: str | None = None
        self._sql: list[bytes] = []
        if desired is not None:
            self._sql = _sql_files(desired)
            try:
                self.desired_key = desired_key(config, desired)
            except Exception as exc:  # a model whose DDL only a live server can produce
                progress(f"not caching the models' state: their DDL does not compile without "
                         f"a server ({type(exc).__name__})")

    def unchanged(self) -> Known | None:
        """The head's state when the models and the head are both cached and equal, else None:
        then the answer needs no scratch server."""
        if self.desired_key is None:
            return None
        desired = load("desired", self.desired_key)
        head = load("head", self.head_key) if desired is not None else None
        if desired is None or head is None:
            return None
        if desired.fingerprint != head.fingerprint:
            return None
        self._progress("models and plans unchanged since a verified run: using the cache "
                       f"({cache_dir()}); no scratch server needed")
        return desired

    def models_at(self, fp: str | None) -> Known | None:
        """The models' cached state (built by an earlier run) when it is the state `fp`."""
        known = load("desired", self.desired_key) if self.desired_key is not None else None
        if known is None or known.fingerprint != fp:
            return None
        self._progress("models unchanged since a verified run: using their cached state "
                       "instead of building them")
        return known

    def save_desired(self, description: Description, ddl: str) -> None:
        """Record the models' state, as built on a scratch server (not if a SQL file was edited
        while it was built: the key would name other files than the ones built)."""
        if self.desired_key is not None and self._desired is not None and _sql_files(
            self._desired
        ) == self._sql:
            store("desired", self.desired_key,
                  Known(fingerprint(description), dict(description), ddl))

    def save_head(self, description: Description) -> None:
        """Record the head's state after a replay in which every plan landed."""
        store("head", self.head_key, Known(fingerprint(description), dict(description)))


def open_memo(config: Config, desired: DesiredSchema | None, chain: Sequence[Plan],
              progress: Progress, *, use_cache: bool) -> Memo | None:
    """A Memo, or None when caching is off (`--no-cache`) or the plan files cannot be read."""
    if not use_cache:
        return None
    try:
        return Memo(config, desired, chain, progress)
    except OSError:
        return None
