"""`status`: where the live database stands relative to the plans, read-only.

Fingerprints the live schema and places it on the plan graph: at the head, on the path
to it (plans pending), part-way through a multi-step plan an apply will resume, or off
the graph (drift). Like apply, it needs only the database and the plan files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg2

from deploy import history, snapshot, urls
from deploy import target as target_db
from deploy.applier import find_resumable
from deploy.config import Config
from deploy.errors import DeployError
from deploy.fingerprint import describe, fingerprint
from deploy.plans import load_chain
from deploy.runner import plan_steps


@dataclass
class StatusResult:
    """Where the live database stands relative to the plans."""

    state: str  # "head" | "pending" | "drift" | "no-plans"
    target: str
    live_fingerprint: str
    head: str | None
    matches: str | None  # plan file whose `to` the live schema equals, or "(empty schema)"
    pending: list[str] = field(default_factory=list)
    history: list[dict[str, object]] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)


def read_status(
    config: Config,
    *,
    target: str | None = None,
    wait: float = 10.0,
    progress: Callable[[str], None] | None = None,
    wait_option: str | None = "--wait",
) -> StatusResult:
    """Fingerprint the live database (read-only) and place it on the plan graph; connection
    retries are reported on `progress`."""
    graph = load_chain(config.plans_dir, required=True)
    url = target_db.resolve_target(target)
    conn = target_db.connect(
        url, wait=wait, read_only=True, progress=progress, wait_option=wait_option
    )
    try:
        conn.autocommit = True
        live = describe(conn, config.exclusions)
        live_fp = fingerprint(live)
        path = graph.path(live_fp) if graph.head else None
        resume = None
        if graph.head and path is None:
            resume = find_resumable(conn, config, graph, live)
        rows = history.last_rows(conn, config.history_schema)
    except psycopg2.Error as exc:
        raise DeployError(
            f"Reading the schema of {urls.describe(url)} failed: {urls.mask(str(exc).strip())}."
            + target_db.privilege_hint(exc, url, config.history_schema)
        ) from None
    finally:
        conn.close()
    result = StatusResult("no-plans", urls.describe(url), live_fp, graph.head, None,
                          history=rows)
    if graph.head is None:
        return result
    if live_fp == graph.start:
        result.matches = "(empty schema)"
    for plan in graph.chain:
        if plan.to_fingerprint == live_fp:
            result.matches = plan.filename
    if resume is not None:
        steps = len(plan_steps(resume.plan.body, resume.plan.filename))
        result.matches = (f"part-way through {resume.plan.filename} (step {resume.steps_done} of "
                          f"{steps} done; apply resumes it)")
        path = [resume.plan, *(graph.path(resume.plan.to_fingerprint) or [])]
    if path is None:
        result.state = "drift"
        differences = snapshot.head_differences(config, graph.head, live)
        result.differences = [str(d) for d in differences or []]
    elif not path:
        result.state = "head"
    else:
        result.state = "pending"
        result.pending = [p.filename for p in path]
    return result
