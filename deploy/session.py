"""The session state every plan runs with, and the statements that may not change it.

apply runs several plans, and the steps of a resumable plan, on one connection. A setting a
plan changed for the session would silently apply to every statement after it: a `RESET ALL`
turned lock_timeout off for the next plan, and a resumed plan lost the settings its first
steps made. So:

* the runner pins search_path (to `public`: the schema the hazard classifier resolves
  unqualified names to), lock_timeout, statement_timeout, the role and
  session_replication_role before every step, and replays the harmless settings
  (PLAN_SETTINGS) that earlier steps of the same plan made;
* plan_steps refuses, at plan, check and apply alike, statements that change the session for
  later statements: session-level SET/RESET (except PLAN_SETTINGS), RESET ALL, SET ROLE,
  SET SESSION AUTHORIZATION, DISCARD, SET SESSION CHARACTERISTICS and set_config(…, false).
  `SET LOCAL` is allowed (it ends with the plan's transaction), except for NEVER_LOCAL.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from psycopg2.extensions import TRANSACTION_STATUS_IDLE

from deploy.lazy import lazy_module
from deploy.statements import DEFAULT_SCHEMA, find

if TYPE_CHECKING:
    from pglast import ast, enums
else:  # imported on first use: an apply at head parses nothing (deploy/lazy.py)
    ast = lazy_module("pglast.ast", globals())
    enums = lazy_module("pglast.enums", globals())

# Settings pinned for every step of every plan (with the session's own identity).
PINNED = ("search_path", "lock_timeout", "statement_timeout", "role", "session_replication_role")
# Session settings a plan may make for itself: they only change how its own statements are
# checked or reported (migra writes `set check_function_bodies = off;`). They are replayed
# before each later step of the same plan and reset before the next plan.
PLAN_SETTINGS = ("check_function_bodies", "client_min_messages")
# Not even SET LOCAL: name resolution, identity and trigger firing decide what the reviewed
# statements do, and the hazard classifier assumes the pinned values.
NEVER_LOCAL = ("search_path", "role", "session_authorization", "session_replication_role")


@functools.cache
def _definitions() -> tuple[type, ...]:
    """Statements that define code without running it: a set_config inside is not a call."""
    return (ast.CreateFunctionStmt, ast.ViewStmt, ast.CreateTrigStmt, ast.RuleStmt,
            ast.CreatePolicyStmt, ast.AlterPolicyStmt)

_ADVICE = {
    "search_path": "schema-qualify the names instead (plans run with search_path = public)",
    "role": "run apply as the role that should own the objects, or use ALTER … OWNER TO",
    "session_authorization": "run apply as the role that should own the objects, or use "
                             "ALTER … OWNER TO",
    "session_replication_role": "it would switch off triggers and foreign-key checks; write "
                                "the data change so that it does not need that",
    "lock_timeout": "write SET LOCAL (it ends with the plan's transaction), or use apply's "
                    "--lock-timeout",
    "statement_timeout": "write SET LOCAL (it ends with the plan's transaction), or use apply's "
                         "--statement-timeout",
}


def refusal(node: ast.Node) -> str | None:
    """Why the statement may not be in a plan (it changes the session for the statements and
    plans after it) and what to write instead; None when it may."""
    if isinstance(node, ast.DiscardStmt):
        return "DISCARD resets the session apply pinned; remove the line"
    if isinstance(node, ast.VariableSetStmt):
        return _set_refusal(node)
    if isinstance(node, _definitions()):
        return None
    for n in find(node, ast.FuncCall):
        if _name(n.funcname) == "set_config":
            reason = _set_config_refusal(n)
            if reason:
                return reason
    return None


def plan_setting(node: ast.Node) -> bool:
    """Whether the statement is a session-level SET/RESET of a PLAN_SETTINGS name (allowed,
    and replayed before the later steps of its plan)."""
    return (isinstance(node, ast.VariableSetStmt) and not node.is_local
            and node.kind != enums.VariableSetKind.VAR_RESET_ALL
            and node.name in PLAN_SETTINGS)


def capture(conn: object, search_path: str = DEFAULT_SCHEMA) -> dict[str, str]:
    """The values to pin: the session's current ones (as apply set them), search_path
    replaced by `search_path`, plus the session user's name under "session_user"."""
    names = [n for n in PINNED + PLAN_SETTINGS if n != "search_path"]
    idle = conn.get_transaction_status() == TRANSACTION_STATUS_IDLE  # type: ignore[attr-defined]
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(
            "SELECT session_user::text, "
            + ", ".join("current_setting(%s)" for _ in names),
            names,
        )
        row = cur.fetchone()
    if idle and not conn.autocommit:  # type: ignore[attr-defined]
        conn.rollback()  # type: ignore[attr-defined]  # leave no transaction open behind us
    values = dict(zip(names, row[1:], strict=True))
    values["search_path"] = search_path
    values["session_user"] = row[0]
    return values


def pin(cur: object, values: Mapping[str, str], replay: Sequence[str] = ()) -> None:
    """Put the session back to `values` (from capture()), then run `replay` (the plan's own
    PLAN_SETTINGS statements of earlier steps). Only settings that differ are set, so a role
    without superuser may pin session_replication_role."""
    names = [n for n in values if n != "session_user"]
    changes = ", ".join(
        "CASE WHEN current_setting(%s) IS DISTINCT FROM %s THEN set_config(%s, %s, false) END"
        for _ in names
    )
    params: list[str] = []
    for name in names:
        params += [name, values[name], name, values[name]]
    execute = cur.execute  # type: ignore[attr-defined]
    execute("SELECT session_user::text")
    if cur.fetchone()[0] != values["session_user"]:  # type: ignore[attr-defined]
        execute("SET SESSION AUTHORIZATION DEFAULT")
    execute("SELECT " + changes, params)
    for sql in replay:
        execute(sql)


def _set_refusal(node: ast.VariableSetStmt) -> str | None:
    kind = enums.VariableSetKind
    name = node.name or ""
    if node.kind == kind.VAR_RESET_ALL:
        return ("RESET ALL would reset lock_timeout, statement_timeout and search_path for every "
                "statement and plan after it; remove the line")
    if node.kind == kind.VAR_SET_MULTI:
        if name == "SESSION CHARACTERISTICS":
            return ("SET SESSION CHARACTERISTICS changes every later transaction; write "
                    "SET TRANSACTION … at the start of the plan instead")
        return None  # SET TRANSACTION …: this transaction only
    if node.is_local:
        if name in NEVER_LOCAL:
            return f"SET LOCAL {name} is not allowed either: {_ADVICE[name]}"
        return None
    if name in PLAN_SETTINGS:
        return None
    verb = "RESET" if node.kind == kind.VAR_RESET else "SET"
    what = {"role": f"{verb} ROLE", "session_authorization": f"{verb} SESSION AUTHORIZATION"}.get(
        name, f"{verb} {name}")
    advice = _ADVICE.get(name, "write SET LOCAL instead (it ends with the plan's transaction)")
    return f"{what} would stay in force for every statement and plan after it; {advice}"


def _set_config_refusal(call: ast.FuncCall) -> str | None:
    args = list(call.args or ())
    setting = _literal(args[0]) if args else None
    local = len(args) > 2 and isinstance(args[2], ast.A_Const) and _truthy(args[2])
    if setting is None:
        return ("set_config() with a computed setting name cannot be checked; name the "
                "setting and write SET LOCAL instead")
    if setting in NEVER_LOCAL:
        return f"set_config('{setting}', …) is not allowed: {_ADVICE[setting]}"
    if not local:
        return (f"set_config('{setting}', …, false) would stay in force for every statement "
                "and plan after it; write SET LOCAL instead (it ends with the plan's "
                "transaction)")
    return None


def _name(names: Sequence[ast.Node]) -> str:
    parts = [n.sval for n in names if isinstance(n, ast.String)]
    return parts[-1].lower() if parts and (len(parts) == 1 or parts[0] == "pg_catalog") else ""


def _literal(node: ast.Node) -> str | None:
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.String):
        return node.val.sval.lower()
    if isinstance(node, ast.TypeCast):
        return _literal(node.arg)
    return None


def _truthy(const: ast.A_Const) -> bool:
    val = const.val
    if isinstance(val, ast.Boolean):
        return bool(val.boolval)
    if isinstance(val, ast.String):
        return val.sval.lower() in ("true", "t", "on", "yes", "1")
    return False
