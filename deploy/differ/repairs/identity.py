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

Identity -> serial: migra creates the serial's sequence while the identity's (of the same
name) still exists, and would start it at 1. This repair creates it under a temporary name,
sets it to the identity's position, drops the identity, then gives it its name, default
and owner.
"""

from __future__ import annotations

from pglast import ast, enums

from deploy.differ.context import DiffContext
from deploy.differ.repairs.new_sequences import create_sequence_sql
from deploy.differ.sqltext import deparse, ident, literal, parse_fresh, parse_one, qualified
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
    serials = _sequences_by_column(ctx.after, "owned-by=")
    old_identities = _sequences_by_column(ctx.before, "identity-of=")
    to_serial = {
        column: serials[column] for column in serials
        if column in old_identities and _dropped_identity(parsed, column)
    }
    skip = _to_serial_statements(parsed, to_serial)
    for index, (statement, node) in enumerate(zip(statements, parsed, strict=True)):
        if index in skip:
            continue
        if _added_identity(node, enums.AlterTableType.AT_DropIdentity) in to_serial:
            table, name = column = _added_identity(node, enums.AlterTableType.AT_DropIdentity)
            sequence, attributes = to_serial[column]
            identity_sequence = old_identities[column][0]
            schema, seq = split_key(sequence)[:2]
            temporary = qualified(schema, seq[:40] + "__serial_new")
            result += [
                create_sequence_sql(temporary, attributes),
                f"SELECT setval({literal(temporary)}, last_value, is_called) "
                f"FROM {identity_sequence};",
                statement,
                f"ALTER SEQUENCE {temporary} RENAME TO {ident(seq)};",
                f"ALTER TABLE {table} ALTER COLUMN {ident(name)} SET DEFAULT "
                f"nextval({literal(sequence)}::regclass);",
            ]
            continue
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

    def bare_identities(tree: ast.CreateStmt) -> list[tuple[ast.Constraint, tuple[str, str]]]:
        return [
            (constraint, (table, element.colname))
            for element in tree.tableElts or ()
            if isinstance(element, ast.ColumnDef) and (table, element.colname) in identities
            for constraint in element.constraints or ()
            if constraint.contype == enums.ConstrType.CONSTR_IDENTITY and not constraint.options
        ]

    if not bare_identities(node):
        return statement
    # `node` is shared with the other repairs of this diff (sqltext.parse_memo): edit a copy.
    copy = parse_fresh(statement)
    for constraint, column in bare_identities(copy):
        sequence, attributes = identities[column]
        sample = parse_fresh("CREATE TABLE x (c int GENERATED ALWAYS AS IDENTITY ("
                             + _identity_options(sequence, attributes) + "))")
        constraint.options = sample.tableElts[0].constraints[0].options
    return deparse(copy)


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


def _dropped_identity(parsed: list, column: tuple[str, str]) -> bool:
    return any(_added_identity(n, enums.AlterTableType.AT_DropIdentity) == column
               for n in parsed)


def _to_serial_statements(parsed: list, to_serial: dict) -> set[int]:
    """migra's CREATE SEQUENCE and SET DEFAULT for identity -> serial columns (replaced)."""
    names = {sequence for sequence, _ in to_serial.values()}
    skip = set()
    for index, node in enumerate(parsed):
        created = isinstance(node, ast.CreateSeqStmt) and qualified(
            node.sequence.schemaname or "public", node.sequence.relname) in names
        if created or _added_identity(node, enums.AlterTableType.AT_ColumnDefault) in to_serial:
            skip.add(index)
    return skip


def _added_identity(
    node: object, subtype: enums.AlterTableType = enums.AlterTableType.AT_AddIdentity
) -> tuple[str, str] | None:
    """(table, column) of a one-command ALTER TABLE of this subtype on a column."""
    if not (isinstance(node, ast.AlterTableStmt) and len(node.cmds or ()) == 1):
        return None
    cmd = node.cmds[0]
    if cmd.subtype != subtype:
        return None
    return (qualified(node.relation.schemaname or "public", node.relation.relname), cmd.name)


def _dropped_sequence(statement: str) -> str | None:
    node = parse_one(statement)
    if isinstance(node, ast.DropStmt) and node.removeType == enums.ObjectType.OBJECT_SEQUENCE \
            and len(node.objects) == 1:
        parts = [n.sval for n in node.objects[0]]
        return qualified(*parts) if len(parts) == 2 else qualified("public", parts[0])
    return None
