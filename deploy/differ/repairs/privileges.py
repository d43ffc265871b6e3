"""Privileges (GRANT / REVOKE), only with `[tool.deploy] privileges = true`.

migra's privilege diff covers tables only (not views it creates, sequences, columns,
schemas, functions or types), so this repair diffs them all from the same catalog reading
as the fingerprint: per object, the grants to roles other than its owner. An object new in
the target starts from PostgreSQL's default grants for its kind (functions: EXECUTE to
PUBLIC). Appended last (before comments): every object exists by then. An object the
statements drop and re-create loses its grants; the planner's follow-up pass restores them.
"""

from __future__ import annotations

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import ident
from deploy.fingerprint import Exclusions, privilege_entries, split_key

_ON = {"table": "TABLE", "sequence": "SEQUENCE", "schema": "SCHEMA", "function": "ROUTINE",
       "type": "TYPE"}


def _entries(conn: Connection, exclusions: Exclusions) -> dict[str, tuple[str, str]]:
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute("SELECT set_config('search_path', 'pg_catalog', true)")
        result = privilege_entries(cur, exclusions)
    raw.rollback()
    if conn.in_transaction():
        conn.rollback()
    return result


def _grants(text: str) -> dict[tuple[str, str], bool]:
    result = {}
    for item in filter(None, text.split(",")):
        grantee, _, privilege = item.rpartition(":")
        result[(grantee, privilege.rstrip("*"))] = privilege.endswith("*")
    return result


def _object(key: str) -> tuple[str, str]:
    """(`ON …` clause, column list) for an entry key."""
    kind, _, name = key.partition(" ")
    if kind == "column":
        schema, table, column = split_key(name)[:3]
        return f"TABLE {ident(schema)}.{ident(table)}", f" ({ident(column)})"
    return f"{_ON[kind]} {name}", ""


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Append the GRANTs and REVOKEs that make the source's privileges the target's."""
    if not ctx.exclusions.privileges:
        return statements
    before = _entries(ctx.source, ctx.exclusions)
    after = _entries(ctx.target, ctx.exclusions)
    # A column without column grants has no entry: it has none, if the column still exists.
    for key in before:
        if key.startswith("column ") and key not in after and f"{key}" in ctx.after:
            after[key] = ("", "")
    extra = []
    for key in sorted(after):
        grants, defaults = after[key]
        old = _grants(before[key][0] if key in before else defaults)
        new = _grants(grants)
        on, columns = _object(key)
        for (grantee, privilege) in sorted(set(old) | set(new)):
            who = "PUBLIC" if grantee == "public" else grantee
            was, will = old.get((grantee, privilege)), new.get((grantee, privilege))
            if was == will:
                continue
            if will is None:
                extra.append(f"REVOKE {privilege}{columns} ON {on} FROM {who};")
            elif was and not will:
                extra.append(f"REVOKE GRANT OPTION FOR {privilege}{columns} ON {on} FROM {who};")
            else:
                option = " WITH GRANT OPTION" if will else ""
                extra.append(f"GRANT {privilege}{columns} ON {on} TO {who}{option};")
    return statements + extra
