"""Opt-in `[tool.deploy] alembic_stamp`: keep `alembic_version` at one revision after apply.

Apps that moved from Alembic often check `alembic_version` at start-up and refuse to run
when it is missing or not their head (MLflow does). With `alembic_stamp = "<revision>"`,
every successful apply leaves `public.alembic_version` holding exactly that row, created
the way Alembic creates it, so such an app keeps starting without a code change. The
table is left out of fingerprints and diffs (it is data the tool owns, not schema).
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg2

TABLE = "alembic_version"

# Alembic's own DDL for the table (alembic.runtime.migration, version_num VARCHAR(32)).
_CREATE = (
    "CREATE TABLE IF NOT EXISTS public.alembic_version (version_num VARCHAR(32) NOT NULL, "
    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
)


def stamp(
    conn: psycopg2.extensions.connection, revision: str, progress: Callable[[str], None]
) -> None:
    """Make public.alembic_version hold exactly `revision` (one transaction; no-op when it does)."""
    autocommit = conn.autocommit
    conn.autocommit = False
    try:
        with conn, conn.cursor() as cur:
            cur.execute(_CREATE)
            cur.execute("SELECT version_num FROM public.alembic_version ORDER BY 1")
            rows = [row[0] for row in cur.fetchall()]
            if rows != [revision]:
                cur.execute("DELETE FROM public.alembic_version")
                cur.execute("INSERT INTO public.alembic_version VALUES (%s)", (revision,))
                progress(f"alembic_version set to {revision} (was: {', '.join(rows) or 'empty'})")
    finally:
        conn.autocommit = autocommit
