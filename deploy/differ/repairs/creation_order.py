"""Creation order: migra creates tables in name order and before domains and functions,
so a child that INHERITS (or is a PARTITION OF) a later-named table, a column of a domain
type, or a default/check calling a function is created before what it needs, and fails.

This repair moves the creation of a relation, domain or function up to just before the
first CREATE TABLE / VIEW / ALTER TABLE that names it (stable otherwise), so a first plan
from the empty schema runs top to bottom.
"""

from __future__ import annotations

from pglast import ast

from deploy.differ.context import DiffContext
from deploy.differ.sqltext import parse_one
from deploy.statements import find, qualified_name


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Reorder creations so each comes after the creation of every relation it names."""
    return reorder(statements)


def reorder(statements: list[str]) -> list[str]:
    """`statements` with each creation moved after the creations it depends on."""
    items = [(s, *_created_and_used(s)) for s in statements]
    for _ in range(len(items)):  # each pass fixes at least one; a cycle stops the loop
        moved = False
        created_at = {made: i for i, (_, made, _) in enumerate(items) if made}
        for index, (_, _made, used) in enumerate(items):
            later = [created_at[u] for u in used if created_at.get(u, -1) > index]
            if later:
                # Pull the creation up rather than push the user down: a user's follow-ups
                # (VALIDATE after ADD CONSTRAINT, …) keep their order.
                items.insert(index, items.pop(min(later)))
                moved = True
                break
        if not moved:
            break
    return [item[0] for item in items]


# What a creation may depend on: relations, types (a column of a domain) and functions.
_USED = (ast.RangeVar, ast.TypeName, ast.FuncCall)


def _created_and_used(statement: str) -> tuple[tuple[str, ...] | None, set[tuple[str, ...]]]:
    node = parse_one(statement)
    if isinstance(node, ast.CreateStmt):
        made, parents = node.relation, [node]
    elif isinstance(node, ast.ViewStmt):
        # Every node under the query (walking each subtree again added nothing to the set).
        made, parents = node.view, [node.query]
    elif isinstance(node, ast.AlterTableStmt):  # e.g. a CHECK calling a function
        made, parents = None, [node]
    elif isinstance(node, ast.CreateDomainStmt):
        return ("type", *qualified_name(node.domainname)), set()
    elif isinstance(node, ast.CreateFunctionStmt):
        return ("function", *qualified_name(node.funcname)), set()
    else:
        return None, set()
    name = ("relation", made.schemaname or "public", made.relname) if made else None
    used: set[tuple[str, ...]] = set()
    for parent in parents:
        for n in find(parent, _USED):
            if isinstance(n, ast.RangeVar) and n.relname and n is not made:
                used.add(("relation", n.schemaname or "public", n.relname))
            elif isinstance(n, ast.TypeName):  # a column of a domain type
                used.add(("type", *qualified_name(n.names)))
            elif isinstance(n, ast.FuncCall):  # a default or check that calls a function
                used.add(("function", *qualified_name(n.funcname)))
    return name, used - {name}
