"""The differ's repairs, in the order they run over migra's statements.

Each repair is a module with one job and a function `apply(ctx, statements) -> statements`:
it may replace, remove, reorder or append statements. Its docstring says what migra gets
wrong (or leaves out) for that object kind and how the repair fixes it. Repairs that
rewrite migra's output run before those that only append (comments come last, so a
re-created object gets its comment back).
"""

from __future__ import annotations

from types import ModuleType

from deploy.differ.repairs import (
    check_constraints,
    comments,
    creation_order,
    enums,
    generated_columns,
    identity,
    inheritance,
    new_sequences,
    online,
    sequences,
)

REPAIRS: tuple[ModuleType, ...] = (
    new_sequences,
    creation_order,
    inheritance,
    check_constraints,
    enums,
    generated_columns,
    identity,
    sequences,
    online,
    comments,
)
