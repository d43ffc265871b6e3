"""Renames that keep data: `info={"renamed_from": "old"}` on a model's table or column.

To migra a renamed table or column looks like a drop and an add: the data would be lost. The
planner therefore runs the renames on a scratch copy of the base *before* diffing
(deploy/renames.py), and this repair has one job: the SQL of those renames.

* `hint_statements` validates each hint against the base and the models and returns the
  `ALTER TABLE … RENAME [COLUMN] …` statements (tables first, so a column hint on a renamed
  table names the table's new name). A hint whose new name already exists in the base was
  applied by an earlier plan and is inert.
* `follow_statements` renames what PostgreSQL leaves named after the old name: owned
  sequences (serial `<table>_id_seq`), constraints (primary key, unique, check, foreign keys,
  PostgreSQL 18's NOT NULL rows) and indexes, to the names `create_all` gave the models.
  Objects are matched by what they are (sequence: the column that owns it; constraint: its
  kind and definition; index: its definition without the name), never by guessing a naming
  convention; an object with no unique match is left to the differ.
* `apply` puts the renames, already applied to the differ's source, first in the plan.

Every statement comes with its inverse, so the reverse plan renames back instead of dropping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import ident, rows
from deploy.errors import DeployError
from deploy.renames import Rename, RenameHint

Table = tuple[str, str]  # (schema, name)


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Put the renames that were run on the differ's source first: the rest of the diff
    starts from the renamed state."""
    return [*ctx.renamed, *statements]


def hint_statements(
    base: Connection, desired: Connection, hints: Sequence[RenameHint]
) -> list[Rename]:
    """The table and column renames the hints ask for, checked against the base (DeployError
    for a hint whose old name does not exist there and whose new name does not either)."""
    base_tables = _tables(base)
    desired_tables = _tables(desired)
    renames: list[Rename] = []
    moved: dict[Table, str] = {}  # model table -> its name in the base
    for hint in (h for h in hints if h.kind == "table"):
        old, new = (hint.schema, hint.old), (hint.schema, hint.new)
        if new in base_tables:
            continue  # applied by an earlier plan: the hint is inert
        if old not in base_tables:
            raise _missing(hint, f"table {_q(old)}", f"table {_q(new)}")
        if old in desired_tables:
            raise _still_defined(hint, f"table {_q(old)}")
        moved[new] = hint.old
        renames.append(Rename(
            f"ALTER TABLE {_qname(old)} RENAME TO {ident(hint.new)};",
            f"ALTER TABLE {_qname(new)} RENAME TO {ident(hint.old)};",
        ))
    columns = _columns(base, {(h.schema, moved.get((h.schema, h.table), h.table))
                              for h in hints if h.kind == "column"})
    wanted = _columns(desired, {(h.schema, h.table) for h in hints if h.kind == "column"})
    for hint in (h for h in hints if h.kind == "column"):
        in_base = (hint.schema, moved.get((hint.schema, hint.table), hint.table))
        table = (hint.schema, hint.table)
        present = columns.get(in_base, set())
        if hint.new in present:
            continue  # applied by an earlier plan
        if hint.old not in present:
            where = (f"table {_q(in_base)}" if in_base in base_tables
                     else f"the base (it has no table {_q(in_base)})")
            raise _missing(hint, f"column {_q(hint.old)} in {where}",
                           f"column {_q(hint.new)}")
        if hint.old in wanted.get(table, set()):
            raise _still_defined(hint, f"column {_q(hint.old)} of table {_q(table)}")
        renames.append(Rename(
            f"ALTER TABLE {_qname(table)} RENAME COLUMN {ident(hint.old)} TO {ident(hint.new)};",
            f"ALTER TABLE {_qname(table)} RENAME COLUMN {ident(hint.new)} TO {ident(hint.old)};",
        ))
    return renames


def follow_statements(renamed: Connection, desired: Connection, tables: Iterable[Table]
                      ) -> list[Rename]:
    """Renames of the sequences, constraints and indexes of `tables` (and of foreign keys
    pointing at them) whose name in the renamed base differs from the models' name."""
    tables = set(tables)
    if not tables:
        return []
    renames: list[Rename] = []
    have = _owned_sequences(renamed, tables)
    want = _owned_sequences(desired, tables)
    for owner, (schema, old) in sorted(_pairs(have, want).items()):
        new = want[owner][1]
        renames.append(Rename(
            f"ALTER SEQUENCE {_qname((schema, old))} RENAME TO {ident(new)};",
            f"ALTER SEQUENCE {_qname((schema, new))} RENAME TO {ident(old)};",
        ))
    related = tables | _referencing(renamed, tables)
    have_c, want_c = _constraints(renamed, related), _constraints(desired, related)
    for key, old in sorted(_pairs(have_c, want_c).items()):
        table, new = key[0], want_c[key]
        renames.append(Rename(
            f"ALTER TABLE {_qname(table)} RENAME CONSTRAINT {ident(old)} TO {ident(new)};",
            f"ALTER TABLE {_qname(table)} RENAME CONSTRAINT {ident(new)} TO {ident(old)};",
        ))
    have_i, want_i = _indexes(renamed, tables), _indexes(desired, tables)
    for key, old in sorted(_pairs(have_i, want_i).items()):
        schema, new = key[0][0], want_i[key]
        renames.append(Rename(
            f"ALTER INDEX {_qname((schema, old))} RENAME TO {ident(new)};",
            f"ALTER INDEX {_qname((schema, new))} RENAME TO {ident(old)};",
        ))
    return renames


def _pairs(have: dict, want: dict) -> dict:
    """Keys found once on both sides whose names differ: key -> the old name."""
    return {key: name for key, name in have.items()
            if key in want and want[key] != name and name is not None and want[key] is not None}


# --- catalog reads --------------------------------------------------------------------------


def _tables(conn: Connection) -> set[Table]:
    return {(s, n) for s, n in rows(conn, """
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    """)}


# A table given by schema and name, as a regclass (NULL when it does not exist).
_TABLES = "SELECT to_regclass(format('%%I.%%I', s, t)) AS oid, s, t FROM unnest(%(s)s::text[], %(t)s::text[]) AS x(s, t)"  # noqa: E501


def _params(tables: Iterable[Table]) -> dict[str, list[str]]:
    ordered = sorted(tables)
    return {"s": [s for s, _ in ordered], "t": [t for _, t in ordered]}


def _unique(found: list[tuple[object, str]]) -> dict:
    """key -> name, with None for a key that more than one object has (no safe match)."""
    result: dict = {}
    for key, name in found:
        result[key] = None if key in result else name
    return result


def _columns(conn: Connection, tables: set[Table]) -> dict[Table, set[str]]:
    if not tables:
        return {}
    result: dict[Table, set[str]] = {}
    for schema, table, column in rows(conn, f"""
        WITH wanted AS ({_TABLES})
        SELECT w.s, w.t, a.attname FROM wanted w JOIN pg_attribute a ON a.attrelid = w.oid
        WHERE a.attnum > 0 AND NOT a.attisdropped
    """, _params(tables)):
        result.setdefault((schema, table), set()).add(column)
    return result


def _owned_sequences(conn: Connection, tables: set[Table]) -> dict:
    found = rows(conn, f"""
        WITH wanted AS ({_TABLES})
        SELECT w.s, w.t, a.attname, sn.nspname, s.relname
        FROM wanted w JOIN pg_depend d ON d.refobjid = w.oid
          AND d.refclassid = 'pg_class'::regclass AND d.classid = 'pg_class'::regclass
          AND d.deptype IN ('a', 'i')
        JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_namespace sn ON sn.oid = s.relnamespace
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    """, _params(tables))
    result = _unique([((s, t, column), (seq_schema, seq)) for s, t, column, seq_schema, seq
                      in found])
    return result


def _referencing(conn: Connection, tables: set[Table]) -> set[Table]:
    """Tables with a foreign key to one of `tables` (its name may follow the target's)."""
    return {(s, t) for s, t in rows(conn, f"""
        WITH wanted AS ({_TABLES})
        SELECT n.nspname, c.relname FROM wanted w
        JOIN pg_constraint k ON k.confrelid = w.oid AND k.contype = 'f'
        JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    """, _params(tables))}


def _constraints(conn: Connection, tables: set[Table]) -> dict:
    found = rows(conn, f"""
        WITH wanted AS ({_TABLES})
        SELECT w.s, w.t, k.contype, pg_get_constraintdef(k.oid), k.conname
        FROM wanted w JOIN pg_constraint k ON k.conrelid = w.oid
    """, _params(tables))
    return _unique([(((s, t), kind, definition), name) for s, t, kind, definition, name
                    in found])


def _indexes(conn: Connection, tables: set[Table]) -> dict:
    """Indexes that back no constraint (those follow their constraint's rename), keyed by
    their definition with the name left out."""
    found = rows(conn, f"""
        WITH wanted AS ({_TABLES})
        SELECT w.s, w.t, pg_get_indexdef(i.indexrelid), quote_ident(ic.relname), ic.relname
        FROM wanted w JOIN pg_index i ON i.indrelid = w.oid
        JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                          AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
    """, _params(tables))
    # pg_get_indexdef prints "CREATE [UNIQUE] INDEX <quoted name> ON …": the first
    # occurrence of " <quoted name> ON " is the name.
    return _unique([(((s, t), definition.replace(f" {quoted} ON ", " ON ", 1)), name)
                    for s, t, definition, quoted, name in found])


# --- messages -------------------------------------------------------------------------------


def _missing(hint: RenameHint, old: str, new: str) -> DeployError:
    return DeployError(
        f"{hint.model}: info={{\"renamed_from\": {hint.old!r}}} asks to rename {old} to "
        f"{hint.new!r}, but the replayed plans have no such {hint.kind} (and no {new} "
        "either, which would mean the rename was already applied). Correct the old name in "
        "the hint (a table's old name is in the same schema, without the schema prefix), or "
        "remove the hint if the " + hint.kind + " is new; then run `invoke plan` again."
    )


def _still_defined(hint: RenameHint, old: str) -> DeployError:
    return DeployError(
        f"{hint.model}: info={{\"renamed_from\": {hint.old!r}}} renames {old}, but the models "
        f"still define {old}. A rename moves the data to the new name; remove the hint, or "
        "remove (or rename) the model that still uses the old name, and run `invoke plan` "
        "again."
    )


def _q(table: Table | str) -> str:
    if isinstance(table, str):
        return '"' + table.replace('"', '""') + '"'
    return ".".join(_q(part) for part in table)


def _qname(table: Table) -> str:
    return f"{ident(table[0])}.{ident(table[1])}"
