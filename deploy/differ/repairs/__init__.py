"""The differ's repairs, in the order they run over migra's statements.

Each repair is a module with one job and a function `apply(ctx, statements) -> statements`:
it may replace, remove, reorder or append statements. Its docstring says what migra gets
wrong (or leaves out) for that object kind and how the repair fixes it. Repairs that
rewrite migra's output run before those that only append (comments come last, so a
re-created object gets its comment back). Domains, then range types, then composite types
are inserted after migra's leading statements: each may use the ones before it.
"""

from __future__ import annotations

from types import ModuleType

from deploy.differ.repairs import (
    aggregates,
    casts,
    collations,
    column_collations,
    column_options,
    comments,
    composite_types,
    conversions,
    domains,
    event_triggers,
    force_rls,
    foreign_data,
    operators,
    partition_indexes,
    privileges,
    publications,
    ranges,
    replica_identity,
    rules,
    sequences,
    statistics,
    storage_params,
    text_search,
    unique_indexes,
)

REPAIRS: tuple[ModuleType, ...] = (
    sequences,
    collations,
    column_collations,
    domains,
    ranges,
    composite_types,
    text_search,
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
    comments,
)
