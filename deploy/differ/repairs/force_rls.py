"""FORCE ROW LEVEL SECURITY: migra enables RLS but never forces it (nor unforces it).

Appends `ALTER TABLE … FORCE / NO FORCE ROW LEVEL SECURITY` for every table whose flag
differs (a table new in the target starts unforced).
"""

from __future__ import annotations

from deploy.differ.context import DiffContext
from deploy.differ.repairs._common import keys


def apply(ctx: DiffContext, statements: list[str]) -> list[str]:
    """Append FORCE / NO FORCE ROW LEVEL SECURITY where the target's flag differs."""
    before, after = keys(ctx.before, "relation"), keys(ctx.after, "relation")
    extra = []
    for name in sorted(after):
        forced = "force-rls" in after[name].split(" definition=")[0].split()
        was = name in before and "force-rls" in before[name].split(" definition=")[0].split()
        if forced != was:
            extra.append(f"ALTER TABLE {name} {'' if forced else 'NO '}FORCE ROW LEVEL SECURITY;")
    return statements + extra
