"""New sequences: migra writes a bare `create sequence "s"."n";`, which makes a bigint
sequence with default options.

A SERIAL column (SQLAlchemy's `Integer` primary key) owns an `AS integer` sequence whose
MAXVALUE is 2^31-1, so the bare statement never lands on the models. This repair rewrites
every `create sequence` of migra's into one that states the target's real type and every
option (start, increment, min, max, cache, cycle), read from the target's description.
Ownership (`OWNED BY`) stays migra's own later statement.
"""

from __future__ import annotations

from pglast import ast

from deploy.differ.context import DiffContext
from deploy.differ.sqltext import parse_one, qualified
from deploy.fingerprint import Description


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Replace each bare `create sequence` by one with the target's type and options."""
    return [_rewrite(statement, ctx.after) for statement in statements]


def create_sequence_sql(name: str, attributes: str) -> str:
    """CREATE SEQUENCE for the fingerprint entry `sequence <name>` with these attributes."""
    attributes = attributes.split(" comment=")[0]  # the comment is its own statement
    options = dict(word.partition("=")[::2] for word in attributes.split(" ") if word)
    unlogged = "UNLOGGED " if "unlogged" in options else ""
    parts = [f"CREATE {unlogged}SEQUENCE {name}"]
    if options.get("type"):
        parts.append(f"AS {options['type']}")
    for option, keyword in (("increment", "INCREMENT BY"), ("min", "MINVALUE"),
                            ("max", "MAXVALUE"), ("start", "START WITH"), ("cache", "CACHE")):
        if options.get(option):
            parts.append(f"{keyword} {options[option]}")
    parts.append("CYCLE" if "cycle" in options else "NO CYCLE")
    return " ".join(parts) + ";"


def _rewrite(statement: str, after: Description) -> str:
    node = parse_one(statement)
    if not isinstance(node, ast.CreateSeqStmt) or node.options:
        return statement  # a statement migra wrote with options is left as it is
    relation = node.sequence
    name = qualified(relation.schemaname or "public", relation.relname)
    attributes = after.get(f"sequence {name}")
    if attributes is None:
        return statement
    return create_sequence_sql(name, attributes)
