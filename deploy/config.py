"""Settings from `[tool.deploy]` in pyproject.toml, checked once, used everywhere."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.errors import DeployError
from deploy.fingerprint import Exclusions

# The tool's own objects live here; fingerprints never include it.
HISTORY_SCHEMA = "schema_deploy"

_KNOWN_KEYS = {
    "metadata", "extensions", "sql", "plans", "snapshot", "postgres", "exclude",
    "scratch", "docker_image", "lock_timeout", "statement_timeout", "history_schema",
    "alembic_stamp",
    "online", "contract",
    "on_ahead", "keep_dropped_data", "keep_max_mb",
    "roles", "privileges",
}
# What apply does when the database is ahead of the plan files (an older deployment).
ON_AHEAD = ("auto", "keep", "rollback")


@dataclass(frozen=True)
class Config:
    """Where the desired schema, plans and snapshot live, and how to treat the target."""

    root: Path
    metadata: str = "schema:metadata"
    extensions: str | None = None
    sql_dir: Path = Path("schema/sql")
    plans_dir: Path = Path("schema/plans")
    snapshot: Path = Path("schema/schema.sql")
    postgres: int = 15
    exclude: tuple[str, ...] = ()
    scratch: str = "auto"
    docker_image: str = "postgres:{major}"
    lock_timeout: str = "5s"
    statement_timeout: str = "15min"
    history_schema: str = HISTORY_SCHEMA
    alembic_stamp: str | None = None  # revision apply keeps in alembic_version (opt-in)
    online: bool = True  # generate online-safe forms for existing tables (issue 11)
    contract: bool = True  # split generated plans into expand + contract parts (issue 11)
    on_ahead: str = "auto"
    keep_dropped_data: bool = True
    keep_max_mb: float = 100.0
    roles: tuple[str, ...] = ()  # created (NOLOGIN) in every scratch server
    privileges: bool = False  # fingerprint and diff GRANTs

    @property
    def exclusions(self) -> Exclusions:
        """What fingerprints and diffs ignore: the history schema, the `exclude` tables, and
        privileges unless `privileges = true`."""
        tables = self.exclude
        if self.alembic_stamp and "alembic_version" not in tables:
            tables = (*tables, "alembic_version")  # apply writes it: never schema drift
        return Exclusions(
            schemas=(self.history_schema,), tables=tables, privileges=self.privileges
        )


def load_config(root: Path | str | None = None) -> Config:
    """Read `[tool.deploy]` from ROOT/pyproject.toml (ROOT defaults to the current directory)."""
    base = Path(root or os.getcwd()).resolve()
    path = base / "pyproject.toml"
    if not path.is_file():
        raise DeployError(
            f"No pyproject.toml in {base}. Run the command from the project root, where "
            "pyproject.toml holds a [tool.deploy] table."
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DeployError(
            f"{path} is not valid TOML ({exc}). Fix the file and run again."
        ) from None
    table = data.get("tool", {}).get("deploy")
    if not isinstance(table, dict):
        raise DeployError(
            f"{path} has no [tool.deploy] table. Add one with at least "
            'metadata = "package.module:metadata" and postgres = <major version>.'
        )
    unknown = sorted(set(table) - _KNOWN_KEYS)
    if unknown:
        raise DeployError(
            f"[tool.deploy] in {path} has unknown keys: {', '.join(unknown)}. "
            f"Known keys are: {', '.join(sorted(_KNOWN_KEYS))}."
        )
    postgres = table.get("postgres", 15)
    if not isinstance(postgres, int) or isinstance(postgres, bool) or not 10 <= postgres <= 30:
        raise DeployError(
            f"[tool.deploy] postgres = {postgres!r} in {path} must be the production server's "
            "major version as a number, for example postgres = 15."
        )
    exclude = table.get("exclude", [])
    if not isinstance(exclude, list) or not all(
        isinstance(x, str) and x.count(".") <= 1 and all(x.split(".")) for x in exclude
    ):
        raise DeployError(
            f"[tool.deploy] exclude in {path} must be a list of table names, each `name` (a "
            "table in public) or `schema.name`, for example exclude = [\"alembic_version\", "
            '"audit.log"].'
        )
    roles = table.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(x, str) and x for x in roles):
        raise DeployError(
            f"[tool.deploy] roles in {path} must be a list of role names, for example "
            'roles = ["app_user", "readonly"] (they are created in every scratch server).'
        )
    privileges = _flag(table, "privileges", False, path, "")
    metadata = table.get("metadata", "schema:metadata")
    if not isinstance(metadata, str) or ":" not in metadata:
        raise DeployError(
            f"[tool.deploy] metadata = {metadata!r} in {path} must be 'module:attribute', "
            'for example metadata = "schema:metadata".'
        )
    online = _flag(table, "online", True, path,
                   " (false: plans use the plain, blocking forms for existing tables)")
    contract = _flag(table, "contract", True, path,
                     " (false: plans are never split into an expand and a contract part)")
    for key in ("sql", "plans", "snapshot", "extensions", "docker_image"):
        if key in table and not isinstance(table[key], str):
            raise DeployError(f"[tool.deploy] {key} in {path} must be a string.")
    stamp = table.get("alembic_stamp")
    if stamp is not None and (not isinstance(stamp, str) or not 0 < len(stamp) <= 32):
        raise DeployError(
            f"[tool.deploy] alembic_stamp = {stamp!r} in {path} must be the Alembic revision "
            "your app expects in alembic_version (a string of 1-32 characters), for example "
            'alembic_stamp = "4f2e1c0d9a7b".'
        )
    on_ahead = table.get("on_ahead", "auto")
    if on_ahead not in ON_AHEAD:
        raise DeployError(
            f"[tool.deploy] on_ahead = {on_ahead!r} in {path} must be one of "
            f"{', '.join(ON_AHEAD)} (what apply does when the database is ahead of the plans)."
        )
    keep = table.get("keep_dropped_data", True)
    keep_max = table.get("keep_max_mb", 100)
    if not isinstance(keep, bool) or isinstance(keep_max, bool) or not isinstance(
            keep_max, int | float) or keep_max < 0:
        raise DeployError(
            f"[tool.deploy] in {path}: keep_dropped_data must be true or false and keep_max_mb "
            "a number of megabytes >= 0, for example keep_dropped_data = true, keep_max_mb = 100."
        )
    return Config(
        root=base,
        metadata=metadata,
        extensions=table.get("extensions"),
        sql_dir=base / table.get("sql", "schema/sql"),
        plans_dir=base / table.get("plans", "schema/plans"),
        snapshot=base / table.get("snapshot", "schema/schema.sql"),
        postgres=postgres,
        exclude=tuple(exclude),
        scratch=str(table.get("scratch", "auto")),
        docker_image=str(table.get("docker_image", "postgres:{major}")),
        lock_timeout=str(table.get("lock_timeout", "5s")),
        statement_timeout=str(table.get("statement_timeout", "15min")),
        history_schema=str(table.get("history_schema", HISTORY_SCHEMA)),
        alembic_stamp=stamp,
        online=online,
        contract=contract,
        on_ahead=on_ahead,
        keep_dropped_data=keep,
        keep_max_mb=float(keep_max),
        roles=tuple(roles),
        privileges=privileges,
    )


def _flag(table: dict[str, Any], key: str, default: bool, path: Path, meaning: str) -> bool:
    """The boolean setting `key`, or a DeployError naming it (`meaning` follows the advice)."""
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise DeployError(
            f"[tool.deploy] {key} = {value!r} in {path} must be true or false{meaning}."
        )
    return value
