"""Creation order: migra creates tables in name order, so a child that INHERITS (or is a
PARTITION OF) a table with a later name is created before its parent and fails.

This repair moves each CREATE TABLE / VIEW that names a relation created by a later
statement to just after that statement (stable otherwise), so a first plan from the empty
schema runs top to bottom.
"""

from __future__ import annotations

from pglast import ast

from deploy.differ.context import DiffContext
from deploy.differ.sqltext import parse_one
from deploy.statements import walk


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Reorder creations so each comes after the creation of every relation it names."""
    return reorder(statements)


def reorder(statements: list[str]) -> list[str]:
    """`statements` with each creation moved after the creations it depends on."""
    items = [(s, *_created_and_used(s)) for s in statements]
    for _ in range(len(items)):  # each pass fixes at least one; a cycle stops the loop
        moved = False
        created_at = {name: i for i, (_, made, _) in enumerate(items) if made}
        for index, (_, made, used) in enumerate(items):
            later = [created_at[u] for u in used if created_at.get(u, -1) > index]
            if made and later:
                items.insert(max(later), items.pop(index))
                moved = True
                break
        if not moved:
            break
    return [item[0] for item in items]


def _created_and_used(statement: str) -> tuple[tuple[str, str] | None, set[tuple[str, str]]]:
    node = parse_one(statement)
    if isinstance(node, ast.CreateStmt):
        made, parents = node.relation, [*(node.inhRelations or ())]
    elif isinstance(node, ast.ViewStmt):
        made, parents = node.view, list(walk(node.query))
    else:
        return None, set()
    used = {
        (n.schemaname or "public", n.relname) for p in parents for n in walk(p)
        if isinstance(n, ast.RangeVar) and n.relname
    }
    name = (made.schemaname or "public", made.relname)
    return name, used - {name}
