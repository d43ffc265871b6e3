"""migra behind a small adapter: its statements, drops included, exclusions removed."""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from sqlalchemy import Connection

from deploy.fingerprint import Exclusions


def load() -> type:
    """migra's Migration class, imported on first use (a plan imports it while its server
    builds the models; an apply never does)."""
    with warnings.catch_warnings(), frames_only_stack():
        # schemainspect imports pkg_resources, which warns on every import.
        warnings.simplefilter("ignore")
        from migra import Migration
    _quote_enum_labels()
    return Migration


def inspect_schema(conn: Connection, exclusions: Exclusions) -> object:
    """migra's reading of the database behind `conn` (a schemainspect inspector), exclusions
    removed: what migra_statements reads of one side, for a caller that diffs the same
    unchanged database more than once."""
    load()
    from schemainspect import get_inspector

    exclude_schema = exclusions.schemas[0] if exclusions.schemas else None
    inspector = get_inspector(conn, exclude_schema=exclude_schema)
    _drop_excluded(inspector, exclusions)
    end_read_transactions(conn)
    return inspector


def migra_statements(source: Connection, target: Connection, exclusions: Exclusions,
                     inspected: tuple[object | None, object | None] = (None, None)
                     ) -> list[str]:
    """migra's statements (drops included; safety lives in hazards), exclusions removed.
    `inspected`: inspect_schema() of source and target when the caller has them."""
    migration_class = load()
    exclude_schema = exclusions.schemas[0] if exclusions.schemas else None
    migration = migration_class(
        inspected[0] if inspected[0] is not None else source,
        inspected[1] if inspected[1] is not None else target,
        exclude_schema=exclude_schema, ignore_extension_versions=True,
    )
    for inspector in (migration.changes.i_from, migration.changes.i_target):
        _drop_excluded(inspector, exclusions)
    migration.set_safety(False)
    # Privileges are diffed by repairs/privileges.py: migra's cover only some tables.
    migration.add_all_changes(privileges=False)
    result = []
    for statement in migration.statements:
        text = statement.strip()
        if text:
            result.append(text if text.endswith(";") else text + ";")
    end_read_transactions(source, target)
    return result


@contextmanager
def frames_only_stack() -> Iterator[None]:
    """Within the block, inspect.stack() gives each frame without its source lines.

    schemainspect finds its 17 query files at import by asking inspect.stack() for the
    calling module: with source context, each call reads the source of every frame on the
    stack (~0.1-0.2 s per process, deep inside a plan). Only the frames are read there."""
    real = inspect.stack

    def frames(context: int = 1) -> list[tuple[FrameType]]:
        found = []
        frame = sys._getframe(1)
        while frame is not None:
            found.append((frame,))
            frame = frame.f_back
        return found

    inspect.stack = frames  # type: ignore[assignment]
    try:
        yield
    finally:
        inspect.stack = real


def _quote_enum_labels() -> None:
    """schemainspect writes enum labels as '{label}': a label with a quote breaks the SQL.

    Its enum class is patched (once) to write standard SQL literals instead.
    """
    from schemainspect.pg.obj import InspectedEnum

    def quoted_elements(self: InspectedEnum) -> str:
        return ", ".join("'" + e.replace("'", "''") + "'" for e in self.elements)

    InspectedEnum.quoted_elements = property(quoted_elements)  # type: ignore[method-assign]


def _drop_excluded(inspector: object, exclusions: Exclusions) -> None:
    """Forget excluded tables (and their indexes, constraints, triggers) inside an inspector."""
    extra_schemas = set(exclusions.schemas[1:])
    if not exclusions.tables and not extra_schemas:
        return
    for attribute in (
        "tables", "views", "materialized_views", "relations", "selectables", "indexes",
        "constraints", "sequences", "triggers", "rlspolicies", "functions", "enums",
        "domains", "types", "composite_types", "collations",
    ):
        objects = getattr(inspector, attribute, None)
        if not isinstance(objects, dict):
            continue
        for key in list(objects):
            obj = objects[key]
            schema = getattr(obj, "schema", None)
            table = getattr(obj, "table_name", None) or getattr(obj, "name", None)
            if schema in extra_schemas or (
                attribute in ("tables", "relations", "selectables", "indexes", "constraints",
                              "triggers", "rlspolicies", "sequences")
                and schema is not None and table is not None
                and exclusions.skips_table(schema, table)
            ):
                del objects[key]


def end_read_transactions(*connections: Connection) -> None:
    """End the read transactions SQLAlchemy opened on these connections."""
    for conn in connections:
        if conn.in_transaction():
            conn.rollback()


