"""`status`: where the live database stands relative to the plans, read-only.

Fingerprints the live schema and places it on the plan graph: at the head, on the path
to it (plans pending), part-way through a multi-step plan an apply will resume, or off
the graph (drift). Like apply, it needs only the database and the plan files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg2

from deploy import history, keep, position, urls
from deploy import target as target_db
from deploy.config import Config
from deploy.errors import DeployError
from deploy.plans import load_chain


@dataclass
class StatusResult:
    """Where the live database stands relative to the plans."""

    state: str  # "head" | "pending" | "contract-pending" | "ahead" | "drift" | "no-plans"
    target: str
    live_fingerprint: str
    head: str | None
    matches: str | None  # plan file whose `to` the live schema equals, or "(empty schema)"
    pending: list[str] = field(default_factory=list)
    history: list[dict[str, object]] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    message: str | None = None  # the drift paragraph, when drifted
    kept: list[str] = field(default_factory=list)  # data kept from dropped columns/tables
    contract_pending: str | None = None  # plan whose contract part a later deploy runs
    detail: str | None = None  # one line on a pending contract (healthy, or what waits)


def read_status(
    config: Config,
    *,
    target: str | None = None,
    wait: float = 10.0,
    progress: Callable[[str], None] | None = None,
    wait_option: str | None = "--wait",
    lock_timeout: str = position.READ_LOCK_TIMEOUT,
    statement_timeout: str = position.READ_STATEMENT_TIMEOUT,
) -> StatusResult:
    """Fingerprint the live database (read-only) and place it on the plan graph; connection
    retries are reported on `progress`.

    Every read is bounded by `lock_timeout`/`statement_timeout`: a table locked by another
    session makes this a prompt DeployError naming that session, not a hang.
    """
    graph = load_chain(config.plans_dir, required=True)
    url = target_db.resolve_target(target)
    where = urls.describe(url)
    conn = target_db.connect(
        url, wait=wait, read_only=True, progress=progress, wait_option=wait_option
    )
    try:
        conn.autocommit = True
        position.guard_reads(conn, lock_timeout, statement_timeout)
        with position.reading(conn, where):
            found = position.locate(conn, config, graph)
            rows = history.last_rows(conn, config.history_schema)
            kept = keep.summary(conn, config.history_schema)
    except psycopg2.Error as exc:
        raise DeployError(
            f"Reading the schema of {where} failed: {urls.mask(str(exc).strip())}."
            + target_db.privilege_hint(exc, url, config.history_schema)
        ) from None
    finally:
        conn.close()
    result = StatusResult(found.state, where, found.live_fingerprint, graph.head,
                          found.matches, history=rows, kept=kept)
    if found.state == position.PART_WAY:
        result.state = "pending"  # apply resumes it: for every reader, plans are pending
    result.pending = found.pending
    if found.contract is not None:
        # The new code's plans end at this plan's `to`: it runs on `expanded` (the contract
        # only removes what it no longer uses), so this is healthy unless plans wait behind.
        name = found.contract.filename
        result.contract_pending = name
        if found.waiting:
            result.state = "pending"
            result.detail = (f"{', '.join(found.waiting)} wait(s) behind the contract part of "
                             f"{name}, which runs at the next deploy (or `invoke apply "
                             "--contract`)")
        else:
            result.state = "contract-pending"
            result.detail = f"contract pending: {name}, runs at the next deploy"
    if found.state == position.DRIFTED:
        diffs = position.differences(config, graph, found.live)
        result.differences = position.summarise(diffs or [])
        result.message = position.drift_message(where, found.live_fingerprint, graph.head, diffs)
    return result
