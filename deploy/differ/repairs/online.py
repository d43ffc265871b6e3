"""Online-safe forms for tables that exist before the plan (issue 11, part 1).

migra emits the forms that are right for an empty table: `CREATE INDEX` (blocks writes for
the whole build), `DROP INDEX` (ACCESS EXCLUSIVE), `SET NOT NULL` (a full scan under ACCESS
EXCLUSIVE), and `ADD CONSTRAINT … NOT VALID` followed by `VALIDATE` — which only helps when
the two commit separately. On a table that exists before the plan (it is in `ctx.before`,
so it may hold rows and serve the old code) this repair rewrites them to forms that do not
block writers:

* `CREATE [UNIQUE] INDEX` -> `CREATE [UNIQUE] INDEX CONCURRENTLY` (a resumable step of its
  own, see deploy/runner.py); `DROP INDEX` -> `DROP INDEX CONCURRENTLY`;
* `ADD CONSTRAINT … FOREIGN KEY/CHECK` -> `… NOT VALID` then `VALIDATE CONSTRAINT`, which the
  runner commits on its own (SHARE UPDATE EXCLUSIVE: writers go on while it scans);
* `ALTER COLUMN … SET NOT NULL` -> `ADD CONSTRAINT <tmp> CHECK (col IS NOT NULL) NOT VALID`,
  `VALIDATE`, `SET NOT NULL` (PostgreSQL 12+ trusts the validated check: no scan), and
  `DROP CONSTRAINT <tmp>`;
* `ADD CONSTRAINT … UNIQUE/PRIMARY KEY (cols)` -> `CREATE UNIQUE INDEX CONCURRENTLY` and
  `ADD CONSTRAINT … USING INDEX` (migra already writes that pair; its index gets built
  concurrently by the first rule).

Every rewrite ends in the same catalog state as the plain form, so the plan's proof and its
fingerprints do not change. Tables the plan creates keep the plain forms (they are empty),
and so does everything when online generation is off (`[tool.deploy] online = false`,
`invoke plan --no-online`): then migra's NOT VALID + VALIDATE pairs on existing tables are
folded back into one plain `ADD CONSTRAINT`, the form whose cost the hazards describe.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from pglast import ast, enums, parser
from pglast.stream import RawStream

from deploy.differ.context import DiffContext
from deploy.differ.sqltext import parse_one
from deploy.fingerprint import Description, split_key
from deploy.statements import DEFAULT_SCHEMA

AT = enums.AlterTableType
CT = enums.ConstrType

Table = tuple[str, str]  # (schema, name)

# PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1).
_MAX_IDENT = 63


@dataclass
class _Catalog:
    """What existed before the plan, by plain (unquoted) names."""

    tables: dict[Table, str] = field(default_factory=dict)  # -> relkind
    columns: dict[tuple[str, str, str], str] = field(default_factory=dict)  # -> attributes
    indexes: dict[tuple[str, str], Table] = field(default_factory=dict)  # (schema, index) ->


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Rewrite statements on tables that exist before the plan into their online-safe forms
    (or, with online generation off, fold NOT VALID + VALIDATE pairs into plain ADDs)."""
    before = _catalog(ctx.before)
    staying = set(_catalog(ctx.after).tables)
    taken = _constraint_names(ctx.before) | _constraint_names(ctx.after)
    out: list[str] = []
    for sql in statements:
        node = parse_one(sql)  # shared (sqltext.parse_memo): read only
        if node is None:
            out.append(sql)
        elif not ctx.online:
            out.extend(_offline(node, sql, before, out))
        else:
            out.extend(_online(node, sql, before, staying, taken))
    return out


# --- online ---------------------------------------------------------------------------------


def _online(
    node: ast.Node,
    sql: str,
    before: _Catalog,
    staying: set[Table],
    taken: set[tuple[str, str, str]],
) -> list[str]:
    if isinstance(node, ast.IndexStmt):
        # CONCURRENTLY needs a name (a killed build must be found again) and is refused on
        # partitioned tables; a table the plan creates is empty and unknown to the old code.
        kind = before.tables.get(_rel(node.relation))
        if not node.concurrent and node.idxname and kind in ("r", "m"):
            return [_insert_after_keyword(sql, "INDEX", "CONCURRENTLY")]
        return [sql]
    if isinstance(node, ast.DropStmt) and node.removeType == enums.ObjectType.OBJECT_INDEX:
        return [_drop_index(node, sql, before, staying)]
    if not isinstance(node, ast.AlterTableStmt) or len(node.cmds or ()) != 1:
        return [sql]
    table = _rel(node.relation)
    if before.tables.get(table) != "r":  # views, partitioned parents, tables this plan creates
        return [sql]
    cmd = node.cmds[0]
    if cmd.subtype == AT.AT_SetNotNull and cmd.name:
        column = before.columns.get((*table, cmd.name))
        if column is not None and "not-null" not in column.split(" "):
            return _set_not_null(table, cmd.name, taken)
        return [sql]
    if cmd.subtype != AT.AT_AddConstraint or not isinstance(cmd.def_, ast.Constraint):
        return [sql]
    constraint = cmd.def_
    if constraint.contype in (CT.CONSTR_FOREIGN, CT.CONSTR_CHECK) and constraint.conname:
        if constraint.skip_validation:
            return [sql]  # migra's NOT VALID; its VALIDATE follows and commits on its own
        return [
            _insert_before_end(sql, "NOT VALID"),
            f"ALTER TABLE {_qname(table)} VALIDATE CONSTRAINT {_q(constraint.conname)};",
        ]
    if constraint.contype in (CT.CONSTR_UNIQUE, CT.CONSTR_PRIMARY):
        return _unique_using_index(table, constraint, sql)
    return [sql]


def _drop_index(node: ast.DropStmt, sql: str, before: _Catalog, staying: set[Table]) -> str:
    """DROP INDEX CONCURRENTLY for one index of an existing plain table that stays."""
    if node.concurrent or node.behavior == enums.DropBehavior.DROP_CASCADE:
        return sql
    objects = list(node.objects or ())
    if len(objects) != 1:  # CONCURRENTLY drops one index per statement
        return sql
    names = [n.sval for n in objects[0] if isinstance(n, ast.String)]
    schema, name = (names[-2] if len(names) > 1 else DEFAULT_SCHEMA), names[-1]
    table = before.indexes.get((schema, name))
    if table is None or before.tables.get(table) not in ("r", "m") or table not in staying:
        return sql  # unknown, partitioned, or its table goes too: nothing left to protect
    return _insert_after_keyword(sql, "INDEX", "CONCURRENTLY")


def _set_not_null(table: Table, column: str, taken: set[tuple[str, str, str]]) -> list[str]:
    """SET NOT NULL through a validated CHECK, so the ACCESS EXCLUSIVE step does not scan."""
    check = _free_name(table, f"{table[1]}_{column}_nn_check", taken)
    qtable, qcol, qcheck = _qname(table), _q(column), _q(check)
    return [
        f"ALTER TABLE {qtable} ADD CONSTRAINT {qcheck} CHECK ({qcol} IS NOT NULL) NOT VALID;",
        f"ALTER TABLE {qtable} VALIDATE CONSTRAINT {qcheck};",
        f"ALTER TABLE {qtable} ALTER COLUMN {qcol} SET NOT NULL;",
        f"ALTER TABLE {qtable} DROP CONSTRAINT {qcheck};",
    ]


def _unique_using_index(table: Table, constraint: ast.Constraint, sql: str) -> list[str]:
    """UNIQUE/PRIMARY KEY (cols) -> a concurrently built unique index, then USING INDEX."""
    plain = (
        constraint.conname
        and constraint.keys
        and not constraint.indexname
        and not constraint.including
        and not constraint.options
        and not constraint.indexspace
        and not constraint.exclusions
    )
    if not plain:
        return [sql]  # already USING INDEX (migra's form), or options we do not carry over
    columns = ", ".join(_q(k.sval) for k in constraint.keys)
    nulls = " NULLS NOT DISTINCT" if getattr(constraint, "nulls_not_distinct", False) else ""
    kind = "PRIMARY KEY" if constraint.contype == CT.CONSTR_PRIMARY else "UNIQUE"
    timing = ""
    if constraint.deferrable:
        timing = " DEFERRABLE INITIALLY DEFERRED" if constraint.initdeferred else " DEFERRABLE"
    name = _q(constraint.conname)
    return [
        f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON {_qname(table)} ({columns}){nulls};",
        f"ALTER TABLE {_qname(table)} ADD CONSTRAINT {name} {kind} USING INDEX {name}{timing};",
    ]


# --- online generation switched off ---------------------------------------------------------


def _offline(node: ast.Node, sql: str, before: _Catalog, out: list[str]) -> list[str]:
    """Fold `ADD … NOT VALID` + `VALIDATE` on an existing table into one plain ADD."""
    if not isinstance(node, ast.AlterTableStmt) or len(node.cmds or ()) != 1:
        return [sql]
    table = _rel(node.relation)
    cmd = node.cmds[0]
    if cmd.subtype != AT.AT_ValidateConstraint or table not in before.tables or not out:
        return [sql]
    previous = _single(out[-1])  # its own tree: edited below
    if not isinstance(previous, ast.AlterTableStmt) or len(previous.cmds or ()) != 1:
        return [sql]
    added = previous.cmds[0].def_
    if (
        _rel(previous.relation) != table
        or previous.cmds[0].subtype != AT.AT_AddConstraint
        or not isinstance(added, ast.Constraint)
        or added.conname != cmd.name
        or not added.skip_validation
    ):
        return [sql]
    added.skip_validation = False
    added.initially_valid = True
    out[-1] = RawStream()(previous) + ";"
    return []


# --- helpers --------------------------------------------------------------------------------


def _catalog(description: Description) -> _Catalog:
    """Tables (with relkind), columns (with attributes) and index -> table, by plain names."""
    catalog = _Catalog()
    for key, value in description.items():
        kind, _, name = key.partition(" ")
        parts = split_key(name)
        if kind == "relation" and len(parts) == 2:
            relkind = next((w[5:] for w in value.split(" ") if w.startswith("kind=")), "")
            catalog.tables[(parts[0], parts[1])] = relkind
        elif kind == "column" and len(parts) == 3:
            catalog.columns[(parts[0], parts[1], parts[2])] = value
        elif kind == "index" and len(parts) == 3:
            catalog.indexes[(parts[0], parts[2])] = (parts[0], parts[1])
    return catalog


def _constraint_names(description: Description) -> set[tuple[str, str, str]]:
    names = set()
    for key in description:
        if key.startswith("constraint "):
            parts = split_key(key.removeprefix("constraint "))
            if len(parts) == 3:
                names.add((parts[0], parts[1], parts[2]))
    return names


def _free_name(table: Table, wanted: str, taken: set[tuple[str, str, str]]) -> str:
    """A constraint name on `table` that neither schema uses, at most 63 bytes."""
    for attempt in range(100):
        name = wanted if attempt == 0 else f"{wanted}{attempt}"
        if len(name.encode("utf-8")) > _MAX_IDENT:
            digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
            name = name.encode("utf-8")[: _MAX_IDENT - 9].decode("utf-8", "ignore") + "_" + digest
        if (table[0], table[1], name) not in taken:
            taken.add((table[0], table[1], name))
            return name
    raise AssertionError("no free constraint name")  # 100 taken names: cannot happen


def _single(sql: str) -> ast.Node | None:
    try:
        parsed = parser.parse_sql(sql)
    except parser.ParseError:
        return None
    return parsed[0].stmt if len(parsed) == 1 else None


def _insert_after_keyword(sql: str, keyword: str, text: str) -> str:
    """`sql` with `text` inserted after its first `keyword` token (found by the scanner)."""
    for token in parser.scan(sql):
        if token.name == keyword:
            written = sql[token.start : token.end + 1]
            word = text.lower() if written.islower() else text  # match migra's case
            return f"{sql[: token.end + 1]} {word}{sql[token.end + 1 :]}"
    raise ValueError(f"no {keyword} in {sql!r}")


def _insert_before_end(sql: str, text: str) -> str:
    """`sql` with `text` appended after its last token (before the semicolon)."""
    tokens = [t for t in parser.scan(sql) if t.name not in ("SQL_COMMENT", "C_COMMENT")]
    if tokens and tokens[-1].name == "ASCII_59":  # ';'
        tokens = tokens[:-1]
    end = tokens[-1].end + 1
    return f"{sql[:end]} {text}{sql[end:]}"


def _rel(rv: ast.RangeVar) -> Table:
    return (rv.schemaname or DEFAULT_SCHEMA, rv.relname)


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _qname(table: Table) -> str:
    return f"{_q(table[0])}.{_q(table[1])}"
