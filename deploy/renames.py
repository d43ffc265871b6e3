"""Rename hints in the models, and the renamed copy of the base that the planner diffs from.

`info={"renamed_from": "old"}` on a `Column` (`mapped_column(..., info=...)`) or a `Table`
(`__table_args__ = {"info": {...}}`) says the object had another name in the replayed plans.
The planner copies the base, runs the renames (and renames the sequences, constraints and
indexes PostgreSQL left under the old name) on the copy, diffs the copy against the models
and puts the renames first in the plan: `ALTER … RENAME` instead of drop + add, every value
kept. The SQL comes from deploy/differ/repairs/renames.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg2
from sqlalchemy import MetaData, Table
from sqlalchemy.engine import URL

from deploy import urls
from deploy.errors import DeployError
from deploy.statements import DEFAULT_SCHEMA

KEY = "renamed_from"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RenameHint:
    """One `renamed_from` hint read from the models: `old` -> `new`.

    `kind` is "table" or "column"; `table` is the model's (new) table name and `column`
    its (new) column name for a column hint; `model` names the model in messages."""

    kind: str
    schema: str
    table: str
    old: str
    new: str
    model: str


@dataclass(frozen=True)
class Rename:
    """A rename statement and the statement that undoes it."""

    sql: str
    undo: str


def read_hints(metadata: MetaData) -> tuple[RenameHint, ...]:
    """Every `renamed_from` hint of the models' tables and columns, checked for type and
    duplicates (DeployError with the model and the hint)."""
    hints: list[RenameHint] = []
    for table in metadata.tables.values():
        schema = table.schema or DEFAULT_SCHEMA
        model = _model_name(table)
        if KEY in table.info:
            hints.append(RenameHint("table", schema, table.name,
                                    _old_name(table.info[KEY], model, "table"),
                                    table.name, model))
        for column in table.columns:
            # Column.info creates an empty dict on first read: look only where one exists.
            info = column.__dict__.get("info") or {}
            if KEY in info:
                where = f"{model}, column {column.name!r}"
                hints.append(RenameHint("column", schema, table.name,
                                        _old_name(info[KEY], where, "column"), column.name,
                                        where))
    _refuse_duplicates(hints)
    return tuple(sorted(hints, key=lambda h: (h.kind != "table", h.schema, h.table, h.new)))


def cache_parts(hints: Sequence[RenameHint]) -> list[bytes]:
    """The hints as cache-key parts ([] without hints, so other models keep their keys)."""
    if not hints:
        return []
    return [b"renames"] + [
        "\0".join((h.kind, h.schema, h.table, h.old, h.new)).encode() for h in hints
    ]


def rename_base(server: object, base_url: URL, desired_url: URL,
                hints: Sequence[RenameHint], progress: Progress) -> tuple[URL, list[Rename]]:
    """A scratch copy of the base with the hinted renames run in it (the differ's source),
    and those renames; (base_url, []) when no hint applies to the base any more."""
    if not hints:
        return base_url, []
    from deploy.differ.repairs.renames import follow_statements, hint_statements
    from deploy.proof import connected

    with connected(base_url) as base, connected(desired_url) as desired:
        renames = hint_statements(base, desired, hints)
    if not renames:
        return base_url, []
    progress(f"renaming {len(renames)} object(s) as the models' renamed_from hints say")
    url = server.create_database("renamed", template="base")  # type: ignore[attr-defined]
    run_renames(url, renames)
    tables = {(h.schema, h.table) for h in hints}
    with connected(url) as renamed, connected(desired_url) as desired:
        follow = follow_statements(renamed, desired, tables)
    run_renames(url, follow)
    return url, renames + follow


def undo(renames: Sequence[Rename]) -> list[Rename]:
    """The renames that take the renamed state back (last first), for the reverse plan."""
    return [Rename(r.undo, r.sql) for r in reversed(renames)]


def run_renames(url: URL, renames: Sequence[Rename]) -> None:
    """Run the renames in the scratch database at `url`, in one transaction."""
    if not renames:
        return
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))  # type: ignore[arg-type]
    try:
        with conn, conn.cursor() as cur:
            for rename in renames:
                try:
                    cur.execute(rename.sql)
                except psycopg2.Error as exc:
                    why = (exc.pgerror or str(exc)).strip()
                    raise DeployError(
                        f"The rename `{rename.sql}` (from a renamed_from hint in the models) "
                        f"fails on a copy of the replayed plans: {why}"
                        ". Another object already uses the new name: rename or drop it in the "
                        "models first, or write the plan by hand (`invoke plan --sql-file`)."
                    ) from None
    finally:
        conn.close()


def _old_name(value: object, where: str, kind: str) -> str:
    if isinstance(value, str) and value and "\0" not in value:
        return value
    raise DeployError(
        f"{where}: info={{\"{KEY}\": {value!r}}} must be the {kind}'s previous name as a "
        f"non-empty string, e.g. info={{\"{KEY}\": \"old_name\"}}. Fix the hint and run again."
    )


def _refuse_duplicates(hints: list[RenameHint]) -> None:
    seen: dict[tuple[str, str, str, str], RenameHint] = {}
    for hint in hints:
        scope = hint.table if hint.kind == "column" else ""
        key = (hint.kind, hint.schema, scope, hint.old)
        first = seen.setdefault(key, hint)
        if first is not hint:
            raise DeployError(
                f"{first.model} and {hint.model} both say info={{\"{KEY}\": {hint.old!r}}}: one "
                f"old {hint.kind} can be renamed to one new name only. Keep the hint on the "
                "model that took over the data and run again."
            )


def _model_name(table: Table) -> str:
    """'model Deck (table "public"."decks")', or the table alone when no mapped class is
    found (a Core Table)."""
    shown = f'table "{table.schema or DEFAULT_SCHEMA}"."{table.name}"'
    try:
        from sqlalchemy.orm import mapperlib

        for registry in list(mapperlib._mapper_registries):  # noqa: SLF001 - names only
            for mapper in registry.mappers:
                if mapper.local_table is table:
                    return f"model {mapper.class_.__name__} ({shown})"
    except Exception:  # noqa: BLE001 - a nicer name is optional
        pass
    return shown
