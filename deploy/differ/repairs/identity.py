"""Identity columns. New tables: migra creates identity columns without their sequence
options (start, increment, min, max, cache, cycle), and setting them afterwards fails
when MINVALUE is above 1; this repair writes them into the CREATE TABLE.

Serial -> identity: migra drops the serial's default, adds an identity (whose new
sequence gets another name, `t_id_seq1`, and starts again at 1) and drops the old
sequence; the next insert collides with the existing ids.

This repair keeps the name and the position: the old sequence is renamed away, the
identity is added with `SEQUENCE NAME <target's name>` and the target's options, set to
the old sequence's position (`SELECT setval(…)`, a statement the hazard gate asks a
reviewer to approve), and the old sequence is dropped.
"""

from __future__ import annotations

from pglast import ast, enums

from deploy.differ.context import DiffContext
from deploy.differ.sqltext import deparse, ident, literal, parse_one, qualified
from deploy.fingerprint import split_key

_OPTIONS = (("increment", "INCREMENT BY"), ("min", "MINVALUE"), ("max", "MAXVALUE"),
            ("start", "START WITH"), ("cache", "CACHE"))


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Rewrite each serial -> identity conversion so the sequence keeps name and position."""
    owned = _sequences_by_column(ctx.before, "owned-by=")
    identities = _sequences_by_column(ctx.after, "identity-of=")
    parsed = [parse_one(s) for s in statements]
    result: list[str] = []
    dropped_old: set[str] = set()
    for statement, node in zip(statements, parsed, strict=True):
        if isinstance(node, ast.CreateStmt):
            result.append(_with_identity_options(statement, node, identities))
            continue
        column = _added_identity(node)
        if column is None or column not in owned or column not in identities:
            result.append(statement)
            continue
        old, (new, attributes) = owned[column][0], identities[column]
        table, name = column
        moved = old
        if old == new:
            schema, seq = split_key(old)[:2]
            moved = qualified(schema, seq[:40] + "__serial_old")
            result.append(f"ALTER SEQUENCE {old} RENAME TO {ident(split_key(moved)[1])};")
        result += [
            f"ALTER TABLE {table} ALTER COLUMN {ident(name)} ADD GENERATED "
            f"{'ALWAYS' if node.cmds[0].def_.generated_when == 'a' else 'BY DEFAULT'} AS "
            f"IDENTITY ({_identity_options(new, attributes)});",
            f"SELECT setval({literal(new)}, last_value, is_called) FROM {moved};",
            f"DROP SEQUENCE {moved};",
        ]
        dropped_old.add(old)
    return [s for s in result if _dropped_sequence(s) not in dropped_old]


def _identity_options(sequence: str, attributes: str) -> str:
    """`SEQUENCE NAME … START WITH … …` for an identity sequence's fingerprint attributes."""
    options = dict(w.partition("=")[::2] for w in attributes.split(" ") if "=" in w)
    settings = [f"{kw} {options[k]}" for k, kw in _OPTIONS if options.get(k)]
    cycle = ["CYCLE"] if " cycle" in f" {attributes}" else []
    return " ".join([f"SEQUENCE NAME {sequence}", *settings, *cycle])


def _with_identity_options(statement: str, node: ast.CreateStmt, identities: dict) -> str:
    """migra's CREATE TABLE with each identity column's sequence options written in."""
    table = qualified(node.relation.schemaname or "public", node.relation.relname)
    changed = False
    for element in node.tableElts or ():
        if not isinstance(element, ast.ColumnDef) or (table, element.colname) not in identities:
            continue
        for constraint in element.constraints or ():
            if constraint.contype == enums.ConstrType.CONSTR_IDENTITY and not constraint.options:
                sequence, attributes = identities[(table, element.colname)]
                sample = parse_one("CREATE TABLE x (c int GENERATED ALWAYS AS IDENTITY ("
                                   + _identity_options(sequence, attributes) + "))")
                constraint.options = sample.tableElts[0].constraints[0].options
                changed = True
    return deparse(node) if changed else statement


def _sequences_by_column(description: dict[str, str], marker: str) -> dict:
    """(table, column) -> (sequence name, attributes) for sequences tied to a column."""
    found = {}
    for key, attributes in description.items():
        if key.startswith("sequence ") and marker in attributes:
            target = attributes.partition(marker)[2].split(" ")[0]
            schema, table, column = split_key(target)[:3]
            found[(qualified(schema, table), column)] = (key.removeprefix("sequence "),
                                                         attributes)
    return found


def _added_identity(node: object) -> tuple[str, str] | None:
    if not (isinstance(node, ast.AlterTableStmt) and len(node.cmds or ()) == 1):
        return None
    cmd = node.cmds[0]
    if cmd.subtype != enums.AlterTableType.AT_AddIdentity:
        return None
    return (qualified(node.relation.schemaname or "public", node.relation.relname), cmd.name)


def _dropped_sequence(statement: str) -> str | None:
    node = parse_one(statement)
    if isinstance(node, ast.DropStmt) and node.removeType == enums.ObjectType.OBJECT_SEQUENCE \
            and len(node.objects) == 1:
        parts = [n.sval for n in node.objects[0]]
        return qualified(*parts) if len(parts) == 2 else qualified("public", parts[0])
    return None
