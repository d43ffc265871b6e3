"""The differ's repairs, in the order they run over migra's statements.

Each repair is a module with one job and a function `apply(ctx, statements) -> statements`:
it may replace, remove, reorder or append statements. Its docstring says what migra gets
wrong (or leaves out) for that object kind and how the repair fixes it. Repairs that
create types migra does not know (collations, domains, range types, composite types, text
search) run first, so that `creation_order` and `check_constraints` see their statements;
repairs that rewrite migra's output run before those that only append; `online` rewrites
what all of them emitted for existing tables; comments come last, so a re-created object
gets its comment back; `renames` puts the renames run on the differ's source before
everything (last, so no repair rewrites them).
"""

from __future__ import annotations

from types import ModuleType

from deploy.differ.repairs import (
    aggregates,
    casts,
    check_constraints,
    collations,
    column_collations,
    column_options,
    comments,
    composite_types,
    conversions,
    creation_order,
    domains,
    enums,
    event_triggers,
    force_rls,
    foreign_data,
    generated_columns,
    identity,
    inheritance,
    new_sequences,
    online,
    operators,
    partition_indexes,
    privileges,
    publications,
    ranges,
    renames,
    replica_identity,
    rules,
    sequences,
    statistics,
    storage_params,
    text_search,
    unique_indexes,
)

REPAIRS: tuple[ModuleType, ...] = (
    new_sequences,
    collations,
    column_collations,
    domains,
    ranges,
    composite_types,
    text_search,
    creation_order,
    inheritance,
    check_constraints,
    enums,
    generated_columns,
    identity,
    sequences,
    unique_indexes,
    partition_indexes,
    storage_params,
    force_rls,
    replica_identity,
    column_options,
    statistics,
    rules,
    event_triggers,
    publications,
    operators,
    aggregates,
    foreign_data,
    casts,
    conversions,
    privileges,
    online,
    comments,
    renames,
)
