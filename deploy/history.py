"""The tool's history table, `<history_schema>.history` (default schema `schema_deploy`).

One row per plan an apply ran (applied, failed, interrupted, or still running), per
adoption of a database that was already at a known state, and, for a plan run step by
step, how many steps committed plus the fingerprint to resume from. A two-part plan gets a
row per part (`part` expand / contract, each with its own fingerprints), and a 'deferred'
row for each deploy that went live with its contract part pending (`deployment`, else
`git_sha`, tells deploys apart). The schema is the
tool's own bookkeeping, not part of the application's schema, so fingerprints and diffs
exclude it (`Config.exclusions`): creating it or adding rows never reads as drift.

Plain functions taking a connection (or, inside a plan's transaction, its cursor) and
the history schema's name.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg2
from psycopg2 import sql as pgsql

from deploy.config import Config
from deploy.errors import DeployError
from deploy.plans import Plan

Connection = psycopg2.extensions.connection

# The deploy lock: one session-level advisory lock key for every apply against a database
# ("schdeplo" as a bigint). Whoever holds it owns the rows that are 'running'.
LOCK_KEY = int.from_bytes(b"schdeplo", "big") & 0x7FFF_FFFF_FFFF_FFFF

# Rows a later run may resume from (a multi-step plan stopped part-way).
_RESUMABLE = ("running", "failed")

_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.history (
    id bigserial PRIMARY KEY,
    plan text NOT NULL,
    status text NOT NULL,
    from_fingerprint text NOT NULL,
    to_fingerprint text NOT NULL,
    sql_sha256 text,
    steps_done integer NOT NULL DEFAULT 0,
    resume_fingerprint text,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    duration_ms integer,
    db_user text NOT NULL DEFAULT current_user,
    client_host text,
    deployment text,
    git_sha text,
    error text,
    note text,
    reverse_sql text,
    expand_only boolean,
    part text
);
COMMENT ON TABLE {schema}.history IS
    'Plans applied by invoke apply (schema-deploy); status: applied, adopted, running, failed, '
    'interrupted, rolled-back, deferred (a contract part left for a later deploy); part: '
    'expand, contract or NULL (a one-part plan). Do not edit.';
"""


@dataclass(frozen=True)
class Who:
    """Who ran an apply and from where, as recorded on each history row."""

    client_host: str
    deployment: str | None
    git_sha: str | None


def who(config: Config) -> Who:
    """OS user@host, the Railway deployment and the git commit of the running code."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # containers often run a uid with no passwd entry
        user = str(os.getuid())
    return Who(
        client_host=f"{user}@{socket.gethostname()}",
        deployment=os.environ.get("RAILWAY_DEPLOYMENT_ID") or None,  # set but empty: unset
        git_sha=os.environ.get("RAILWAY_GIT_COMMIT_SHA") or os.environ.get("GITHUB_SHA")
        or os.environ.get("GIT_COMMIT") or _git_head(config),
    )


def deploy_id(by: Who) -> str | None:
    """What tells one deploy from the next: the Railway deployment, else the git commit, else
    None (then every apply run counts as a new deploy)."""
    return by.deployment or by.git_sha


def _git_head(config: Config) -> str | None:
    if not (config.root / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=config.root, capture_output=True,
                              text=True, timeout=2, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


# --- the table ----------------------------------------------------------------------------


def ensure(conn: Connection, schema: str) -> None:
    """Create the history schema and table unless they exist (leaves `conn` in autocommit)."""
    conn.autocommit = True
    if exists(conn, schema):
        _upgrade(conn, schema)
        return
    with conn.cursor() as cur:
        try:
            cur.execute(pgsql.SQL(_DDL).format(schema=pgsql.Identifier(schema)))
        except psycopg2.errors.InsufficientPrivilege as exc:
            raise DeployError(
                f"The database user may not create the history schema {schema!r} "
                f"({(exc.pgerror or '').strip()}). Grant it CREATE on the database, or create "
                "the schema once as its owner."
            ) from None


# Columns added after the first release: a table created by an older version gets them.
_LATER_COLUMNS = (("reverse_sql", "text"), ("expand_only", "boolean"), ("deployment", "text"),
                  ("part", "text"))


def _upgrade(conn: Connection, schema: str) -> None:
    """Add the columns a history table made by an older version lacks (reverse SQL, part)."""
    with conn.cursor() as cur:
        cur.execute("SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                    "AND attnum > 0 AND NOT attisdropped",
                    (pgsql.Identifier(schema, "history").as_string(conn),))
        have = {row[0] for row in cur.fetchall()}
        for column, kind in _LATER_COLUMNS:
            if column not in have:
                cur.execute(pgsql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} " + kind)
                            .format(pgsql.Identifier(schema, "history"),
                                    pgsql.Identifier(column)))


def has_column(conn: Connection, schema: str, column: str) -> bool:
    """Whether the history table exists and has `column` (older tables lack the new ones)."""
    with conn.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                    "AND attname = %s AND NOT attisdropped)",
                    (pgsql.Identifier(schema, "history").as_string(conn), column))
        return bool(cur.fetchone()[0])


def exists(conn: Connection, schema: str) -> bool:
    """Whether the history table exists."""
    with conn.cursor() as cur:
        table = pgsql.Identifier(schema, "history").as_string(conn)
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
        return bool(cur.fetchone()[0])


def has_rows(conn: Connection, schema: str) -> bool:
    """Whether the history table exists and records anything at all."""
    if not exists(conn, schema):
        return False
    with conn.cursor() as cur:
        cur.execute(pgsql.SQL("SELECT EXISTS (SELECT 1 FROM {}.history)").format(
            pgsql.Identifier(schema)))
        return bool(cur.fetchone()[0])


# --- writing rows -------------------------------------------------------------------------


def insert_row(
    cur_or_conn: object, schema: str, plan: Plan, status: str, started: float, by: Who, *,
    steps_done: int = 0, resume_fp: str | None = None, error: str | None = None,
    from_fp: str | None = None, to_fp: str | None = None, note: str | None = None,
    reverse_sql: str | None = None, expand_only: bool | None = None, part: str | None = None,
) -> int:
    """Insert a row for `plan` (started at epoch time `started`); return its id.

    `part` is 'expand' or 'contract' for one part of a two-part plan (None: the whole plan).
    On a bare connection the row commits at once; on a cursor it commits with its transaction.
    """
    query = pgsql.SQL(
        "INSERT INTO {}.history (plan, status, from_fingerprint, to_fingerprint, sql_sha256, "
        "steps_done, resume_fingerprint, started_at, duration_ms, client_host, deployment, "
        "git_sha, error, note, reverse_sql, expand_only, part) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "RETURNING id"
    ).format(pgsql.Identifier(schema))
    params = (
        plan.filename, status, from_fp or plan.from_fingerprint,
        to_fp or plan.to_fingerprint, plan.sha256, steps_done, resume_fp,
        datetime.fromtimestamp(started, UTC), int((time.time() - started) * 1000),
        by.client_host, by.deployment, by.git_sha, error, note, reverse_sql, expand_only, part,
    )
    return _execute(cur_or_conn, query, params)


def update_row(
    cur_or_conn: object, schema: str, history_id: int | None, *, status: str | None = None,
    steps_done: int | None = None, resume_fp: str | None = None, error: object = ...,
    finished: bool = False, note: str | None = None,
) -> None:
    """Set the given columns of row `history_id` (no-op when None); `finished` sets duration_ms.

    `error=None` clears the error; leaving it out keeps it. `note` is appended to the note.
    """
    if history_id is None:
        return
    sets = []
    params: list[object] = []
    for column, value in (("status", status), ("steps_done", steps_done),
                          ("resume_fingerprint", resume_fp)):
        if value is not None:
            sets.append(pgsql.SQL("{} = %s").format(pgsql.Identifier(column)))
            params.append(value)
    if error is not ...:
        sets.append(pgsql.SQL("error = %s"))
        params.append(error)
    if note is not None:
        sets.append(pgsql.SQL("note = concat_ws('; ', note, %s)"))
        params.append(note)
    if finished:
        sets.append(pgsql.SQL(
            "duration_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::int"))
    query = pgsql.SQL("UPDATE {}.history SET {} WHERE id = %s").format(
        pgsql.Identifier(schema), pgsql.SQL(", ").join(sets))
    _execute(cur_or_conn, query, (*params, history_id), fetch=False)


def record_failure(
    conn: Connection, schema: str, plan: Plan, history_id: int | None, started: float,
    error: str, by: Who,
) -> bool:
    """Best effort: mark the attempt failed (a new row when it had none); never raises.

    False when it could not be written (e.g. the connection is gone)."""
    # The failure being reported matters more than its bookkeeping: a dead connection here
    # must not replace the real error.
    try:
        conn.autocommit = True
        if history_id is None:
            insert_row(conn, schema, plan, "failed", started, by, error=error[:2000])
        else:
            update_row(conn, schema, history_id, status="failed", error=error[:2000],
                       finished=True)
    except psycopg2.Error:
        return False
    return True


def record_adoption(
    conn: Connection, schema: str, state: str, live_fp: str, by: Who
) -> str | None:
    """Record that the live schema (at `live_fp`) was taken as the state after plan `state`.

    Returns the Alembic note stored on the row, if the database was run by Alembic.
    """
    conn.autocommit = True
    note = alembic_note(conn)
    with conn.cursor() as cur:
        cur.execute(
            pgsql.SQL(
                "INSERT INTO {}.history (plan, status, from_fingerprint, to_fingerprint, "
                "sql_sha256, started_at, duration_ms, client_host, deployment, git_sha, note) "
                "VALUES (%s, 'adopted', %s, %s, NULL, clock_timestamp(), 0, %s, %s, %s, %s)"
            ).format(pgsql.Identifier(schema)),
            (state, live_fp, live_fp, by.client_host, by.deployment, by.git_sha, note),
        )
    return note


def reconcile(conn: Connection, schema: str, live_fp: str, keep_id: int | None) -> list[str]:
    """Settle every 'running' row but `keep_id` (rows of dead runs); return what was decided.

    A row whose `to` is the live schema finished and only missed its bookkeeping: it
    becomes 'applied'. Any other becomes 'interrupted'. Only safe under the deploy lock:
    then no other run is alive to own those rows.
    """
    if not exists(conn, schema):
        return []
    conn.autocommit = True
    table = pgsql.Identifier(schema)
    with conn.cursor() as cur:
        cur.execute(
            pgsql.SQL(
                "UPDATE {}.history SET status = CASE WHEN to_fingerprint = %(live)s "
                "THEN 'applied' ELSE 'interrupted' END, note = concat_ws('; ', note, CASE "
                "WHEN to_fingerprint = %(live)s THEN 'finished, but the run died before "
                "recording it; confirmed by a later run from the live schema' ELSE 'the run "
                "died before finishing it; found by a later run' END) "
                "WHERE status = 'running' AND id <> %(keep)s RETURNING plan, status"
            ).format(table),
            {"live": live_fp, "keep": keep_id if keep_id is not None else -1},
        )
        rows = cur.fetchall()
    return [f"history: {plan} was left 'running' by a run that died; recorded as '{status}'"
            for plan, status in rows]


def mark_lost(conn: Connection, schema: str, history_id: int, error: str) -> None:
    """Mark row `history_id` failed with `error`, unless it was settled meanwhile."""
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            pgsql.SQL("UPDATE {}.history SET status = 'failed', error = %s, duration_ms = "
                      "(extract(epoch FROM clock_timestamp() - started_at) * 1000)::int "
                      "WHERE id = %s AND status = 'running'").format(pgsql.Identifier(schema)),
            (error, history_id),
        )


def _execute(cur_or_conn: object, query: pgsql.Composable, params: tuple,
             fetch: bool = True) -> int:
    if isinstance(cur_or_conn, psycopg2.extensions.connection):
        cur_or_conn.autocommit = True  # a bare connection: the statement commits on its own
        with cur_or_conn.cursor() as cur:
            cur.execute(query, params)
            return int(cur.fetchone()[0]) if fetch else 0
    cur_or_conn.execute(query, params)  # type: ignore[attr-defined]
    return int(cur_or_conn.fetchone()[0]) if fetch else 0  # type: ignore[attr-defined]


# --- reading ------------------------------------------------------------------------------


def alembic_note(conn: Connection) -> str | None:
    """'alembic_version=<rev>' when the database was run by Alembic / Flask-Migrate."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'alembic_version' AND c.relkind = 'r' LIMIT 1"
        )
        row = cur.fetchone()
        if row is None:
            return None
        try:
            cur.execute(pgsql.SQL("SELECT string_agg(version_num, ',') FROM {}.alembic_version")
                        .format(pgsql.Identifier(row[0])))
            version = cur.fetchone()[0]
        except psycopg2.Error:
            return "alembic_version present"
    return f"alembic_version={version}" if version else "alembic_version present (empty)"


def last_rows(conn: Connection, schema: str, limit: int = 5) -> list[dict[str, object]]:
    """The newest `limit` rows, newest first, as column → value dicts ([] without a table)."""
    if not exists(conn, schema):
        return []
    with conn.cursor() as cur:
        cur.execute(
            pgsql.SQL(
                "SELECT id, plan, {part} AS part, status, from_fingerprint, to_fingerprint, "
                "sql_sha256, steps_done, started_at, duration_ms, db_user, client_host, "
                "deployment, git_sha, error, note "
                "FROM {table}.history ORDER BY id DESC LIMIT %s"
            ).format(table=pgsql.Identifier(schema), part=_part_column(conn, schema)),
            (limit,),
        )
        columns = [d[0] for d in cur.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
        if any(row["status"] == "running" for row in rows):
            alive = apply_running(conn)
            for row in rows:
                # No apply holds the deploy lock: the run that wrote 'running' is dead, and
                # the next apply settles the row. Say so instead of "running" forever.
                row["stale"] = row["status"] == "running" and not alive
        return rows


def apply_running(conn: Connection) -> bool:
    """Whether some session holds the deploy lock (an apply is running right now)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1)",
            (LOCK_KEY >> 32, LOCK_KEY & 0xFFFF_FFFF),
        )
        return bool(cur.fetchone()[0])


def resumable_rows(conn: Connection, schema: str) -> list[tuple[int, str, int, str, str | None,
                                                               str | None]]:
    """Newest first, up to 10 rows of multi-step plans stopped part-way that may be resumed.

    Each is (id, plan, steps_done, resume_fingerprint, sql_sha256, part); [] without a table.
    """
    if not exists(conn, schema):
        return []
    with conn.cursor() as cur:
        cur.execute(
            pgsql.SQL(
                "SELECT id, plan, steps_done, resume_fingerprint, sql_sha256, {part} "
                "FROM {table}.history WHERE status = ANY(%s) AND resume_fingerprint IS NOT NULL "
                "ORDER BY id DESC LIMIT 10"
            ).format(table=pgsql.Identifier(schema), part=_part_column(conn, schema)),
            (list(_RESUMABLE),),
        )
        return cur.fetchall()


def recorded_applies(conn: Connection, schema: str) -> list[tuple[str, str, str, str | None,
                                                               bool | None]]:
    """Newest first, the plans applied here: (plan, from, to, reverse_sql, expand_only).

    A row counts while its change is in the database: 'applied', and not undone by a later
    'rolled-back' row of the same plan and fingerprints. A two-part plan whose contract part
    ran counts as one apply from its `from` to its `to` (its expand row is folded in); one
    whose contract is still pending counts as its expand part (from -> expanded, no reverse).
    [] without a table.
    """
    if not exists(conn, schema) or not has_column(conn, schema, "reverse_sql"):
        return []
    with conn.cursor() as cur:
        cur.execute(
            pgsql.SQL(
                "SELECT plan, status, from_fingerprint, to_fingerprint, reverse_sql, expand_only, "
                "{part} FROM {table}.history WHERE status IN ('applied', 'rolled-back') "
                "ORDER BY id DESC LIMIT 1000"
            ).format(table=pgsql.Identifier(schema), part=_part_column(conn, schema))
        )
        rows = cur.fetchall()
    out: list[tuple[str, str, str, str | None, bool | None]] = []
    folded: set[int] = set()
    for index, (plan, status, from_fp, to_fp, reverse, expand, part) in enumerate(rows):
        if status != "applied" or index in folded:
            continue
        if part == "contract":
            # The expand row this contract continued: same plan, ending where it started.
            for later, row in enumerate(rows[index + 1:], start=index + 1):
                if row[0] == plan and row[6] == "expand" and row[3] == from_fp:
                    if row[1] == "applied":
                        folded.add(later)
                        from_fp = row[2]
                    break
        out.append((plan, from_fp, to_fp, reverse, expand))
    return out


def _part_column(conn: Connection, schema: str) -> pgsql.Composable:
    """`part`, or NULL for a history table an older version made (reads never alter it)."""
    return pgsql.SQL("part" if has_column(conn, schema, "part") else "NULL::text")


def expand_recorded(conn: Connection, schema: str, plan: Plan) -> bool:
    """Whether the newest applied/rolled-back row of `plan` is its expand part, ending at its
    `expanded` state: the contract part is what remains (needed when `expanded` equals a state
    of the chain, e.g. a plan whose expand part is empty)."""
    if not exists(conn, schema) or not has_column(conn, schema, "part"):
        return False
    with conn.cursor() as cur:
        cur.execute(
            pgsql.SQL("SELECT status, part, to_fingerprint FROM {}.history WHERE plan = %s "
                      "AND status IN ('applied', 'rolled-back') ORDER BY id DESC LIMIT 1")
            .format(pgsql.Identifier(schema)), (plan.filename,))
        row = cur.fetchone()
    return row is not None and row == ("applied", "expand", plan.expanded_fingerprint)


def deferred_deploys(conn: Connection, schema: str, plan: Plan) -> list[str | None]:
    """Deploy ids (Railway deployment, else git commit; None when neither was known) of the
    runs that ended with `plan`'s contract left pending since its expand part last ran: each
    such deploy's code went live on the expanded schema."""
    if not exists(conn, schema) or not has_column(conn, schema, "part"):
        return []
    with conn.cursor() as cur:
        cur.execute(
            pgsql.SQL(
                "SELECT coalesce(deployment, git_sha) FROM {t}.history WHERE plan = %(plan)s "
                "AND status = 'deferred' AND id > coalesce((SELECT max(id) FROM {t}.history "
                "WHERE plan = %(plan)s AND part = 'expand' AND status = 'applied'), 0) "
                "ORDER BY id"
            ).format(t=pgsql.Identifier(schema)), {"plan": plan.filename})
        return [row[0] for row in cur.fetchall()]


def record_deferred(conn: Connection, schema: str, plan: Plan, by: Who, note: str) -> None:
    """Record that this run ends with `plan`'s contract part pending (its code goes live on the
    expanded schema); once per deploy id."""
    if deploy_id(by) is not None and deploy_id(by) in deferred_deploys(conn, schema, plan):
        return
    insert_row(conn, schema, plan, "deferred", time.time(), by, part="contract",
               from_fp=plan.expanded_fingerprint, note=note)
