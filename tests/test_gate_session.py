"""Statements that would change the session for later statements and plans are refused by
the shared step builder (so by plan, check and apply alike); no database needed."""

from __future__ import annotations

import pytest

from deploy.errors import DeployError
from deploy.runner import plan_steps

REFUSED = {
    "RESET ALL": "RESET ALL",
    "SET lock_timeout = 0": "SET lock_timeout",
    "set statement_timeout to default": "SET statement_timeout",
    "RESET lock_timeout": "RESET lock_timeout",
    "SET search_path = scratch": "SET search_path",
    "SET LOCAL search_path = scratch": "SET LOCAL search_path",
    "SET ROLE app_admin": "SET ROLE",
    "RESET ROLE": "RESET ROLE",
    "SET LOCAL ROLE app_admin": "SET LOCAL role",
    "SET SESSION AUTHORIZATION app_admin": "SET SESSION AUTHORIZATION",
    "SET session_replication_role = replica": "SET session_replication_role",
    "SET LOCAL session_replication_role = replica": "SET LOCAL session_replication_role",
    "SET TIME ZONE 'UTC'": "SET timezone",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY": "SET SESSION CHARACTERISTICS",
    "DISCARD ALL": "DISCARD",
    "DISCARD TEMP": "DISCARD",
    "SELECT set_config('lock_timeout', '0', false)": "set_config('lock_timeout'",
    "SELECT pg_catalog.set_config('statement_timeout', '0', 'off')": "set_config(",
    "SELECT set_config('search_path', 'x', true)": "set_config('search_path'",
    "SELECT set_config(current_user, 'x', true)": "computed setting name",
    "UPDATE public.t SET a = set_config('work_mem', '1GB', false)": "set_config('work_mem'",
    # Buried in a subquery of a CTE: the walk still reaches it.
    "WITH c AS (SELECT 1 FROM t WHERE a IN (SELECT set_config('role', 'x', false))) "
    "SELECT * FROM c": "set_config('role'",
}


@pytest.mark.parametrize("sql", REFUSED)
def test_session_changes_are_refused_naming_file_and_line(sql: str) -> None:
    body = "COMMENT ON TABLE t IS 'x';\n\n" + sql + ";\n"
    with pytest.raises(DeployError) as caught:
        plan_steps(body, "20990101T000000Z_x.sql")
    message = caught.value.message
    assert message.startswith("20990101T000000Z_x.sql:3: a plan must not change the session")
    assert REFUSED[sql] in message
    assert caught.value.line == 3 and caught.value.exit_code == 1
    assert "\n" not in message


ALLOWED = [
    "set check_function_bodies = off",
    "SET client_min_messages = warning",
    "RESET check_function_bodies",
    "SET LOCAL lock_timeout = '10s'",
    "SET LOCAL statement_timeout = 0",
    "SET LOCAL work_mem = '256MB'",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SELECT set_config('lock_timeout', '5s', true)",
    # A function's own SET clause only applies while it runs.
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = pg_catalog AS $$ SELECT 1 $$",
    "ALTER FUNCTION f() SET search_path = pg_catalog",
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_settings_that_end_with_the_plan_or_change_nothing_later_are_allowed(sql: str) -> None:
    assert plan_steps(sql + ";\n")


def test_the_plans_own_settings_are_replayed_before_its_later_steps() -> None:
    steps = plan_steps(
        "set check_function_bodies = off;\nCREATE TABLE a (id int);\n"
        "CREATE INDEX CONCURRENTLY ix ON a (id);\nset client_min_messages = warning;\n"
        "CREATE TABLE b (id int);\nDROP INDEX CONCURRENTLY ix;\n"
    )
    assert [(s.transactional, s.replay) for s in steps] == [
        (True, ()),
        (False, ("set check_function_bodies = off",)),
        (True, ("set check_function_bodies = off",)),
        (False, ("set check_function_bodies = off", "set client_min_messages = warning")),
    ]
