"""Unique constraint -> plain unique index: migra drops the constraint (and with it its
index) but does not create the index, because it sees an index of that name on both sides.

Appends the target's `CREATE UNIQUE INDEX` for every index that backed a constraint in the
source and stands alone in the target. (Index -> constraint already works: migra emits
`ADD CONSTRAINT … USING INDEX`.)
"""

from __future__ import annotations

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import ident, keys, rows
from deploy.fingerprint import split_key


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Re-create indexes whose backing constraint the statements drop."""
    before_constraints = keys(ctx.before, "constraint")
    after_constraints = keys(ctx.after, "constraint")
    before_indexes = keys(ctx.before, "index")
    extra = []
    for key in sorted(keys(ctx.after, "index")):
        if key not in before_indexes or key not in before_constraints:
            continue
        if key in after_constraints:
            continue
        schema, _table, index = split_key(key)[:3]
        found = rows(ctx.target, "SELECT pg_get_indexdef(%(name)s::regclass)",
                     {"name": f"{ident(schema)}.{ident(index)}"})
        if found:
            extra.append(found[0][0] + ";")
    return statements + extra
