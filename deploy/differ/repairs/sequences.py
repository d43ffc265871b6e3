"""Sequence options: migra ignores AS type and START/INCREMENT/MIN/MAX/CACHE/CYCLE changes.

Identity sequences are altered through their column, as PostgreSQL requires.
"""

from __future__ import annotations

from collections.abc import Mapping

from deploy.differ.context import DiffContext

_SEQUENCE_OPTIONS = {
    "increment": "INCREMENT BY", "min": "MINVALUE", "max": "MAXVALUE",
    "start": "START WITH", "cache": "CACHE",
}


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Append ALTER SEQUENCE (or ALTER COLUMN ... SET) for sequences on both sides whose
    options differ."""
    return statements + sequence_statements(ctx.before, ctx.after)


def sequence_statements(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """ALTER SEQUENCE for sequences on both sides whose options differ (migra ignores them).

    Identity sequences are altered through their column, as PostgreSQL requires.
    """
    statements = []
    for key in sorted(set(before) & set(after)):
        if not key.startswith("sequence ") or before[key] == after[key]:
            continue
        old, new = _options(before[key]), _options(after[key])
        # AS comes first: it resets MINVALUE/MAXVALUE defaults that the options below pin.
        retype = [f"AS {new['type']}"] if new.get("type") and old.get("type") != new["type"] else []
        changes = retype + [
            f"{_SEQUENCE_OPTIONS[name]} {new[name]}"
            for name in _SEQUENCE_OPTIONS
            if name in new and old.get(name) != new[name]
        ]
        if ("cycle" in old) != ("cycle" in new):
            changes.append("CYCLE" if "cycle" in new else "NO CYCLE")
        if not changes:
            continue
        name = key.removeprefix("sequence ")
        identity_of = new.get("identity-of")
        if identity_of and identity_of == old.get("identity-of"):
            # An identity sequence's type follows its column: ALTER COLUMN TYPE changes it.
            changes = [c for c in changes if c not in retype]
            if not changes:
                continue
            schema_table, column = identity_of.rsplit(".", 1)
            statements.append(
                f"ALTER TABLE {schema_table} ALTER COLUMN {column} "
                + " ".join("SET " + c for c in changes) + ";"
            )
        else:
            statements.append(f"ALTER SEQUENCE {name} {' '.join(changes)};")
    return statements


def _options(attributes: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for word in attributes.split(" "):
        name, _, value = word.partition("=")
        options[name] = value
    return options


