"""Roles in scratch servers ([tool.deploy] roles, and the target's with --target), and
privileges that are fingerprinted and diffed only when [tool.deploy] privileges = true."""

from __future__ import annotations

from pathlib import Path

import pytest
from kinds_helpers import plan

from deploy.config import load_config
from deploy.errors import DeployError
from deploy.planner import make_plan
from tests.conftest import run_invoke

POLICY = (
    "ALTER TABLE users ENABLE ROW LEVEL SECURITY;\n"
    "CREATE POLICY own_rows ON users TO app_user USING (true);\n"
    "GRANT SELECT, UPDATE ON users TO app_user;\n"
)


def _configure(project: Path, extra: str) -> None:
    path = project / "pyproject.toml"
    path.write_text(path.read_text().replace(
        'exclude = ["alembic_version"]', 'exclude = ["alembic_version"]\n' + extra, 1))


def test_schema_with_policy_to_role_needs_the_role(project):
    (project / "schema" / "sql" / "40_policy.sql").write_text(POLICY)
    with pytest.raises(DeployError) as missing:
        make_plan(load_config(project), name="policy", scratch="local")
    assert 'role "app_user" does not exist' in missing.value.message


def test_configured_roles_let_policies_and_grants_be_planned(project):
    _configure(project, 'roles = ["app_user"]')
    (project / "schema" / "sql" / "40_policy.sql").write_text(POLICY)
    result = make_plan(load_config(project), name="policy", scratch="local")
    assert result.status == "written"
    body = result.plan_path.read_text()
    assert "own_rows" in body
    # Privileges are off by default: not in the plan, not in the fingerprint.
    assert "GRANT" not in body.upper().replace("-- ", "")
    again = make_plan(load_config(project), name="again", scratch="local")
    assert again.status == "up-to-date"


def test_privileges_on_are_planned_and_keep_fingerprints_without_grants(project):
    _configure(project, 'roles = ["app_user"]\nprivileges = true')
    # No grants yet: the committed plan still replays and nothing is pending.
    clean = run_invoke(project, "plan", "--check", "--scratch", "local")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    (project / "schema" / "sql" / "40_policy.sql").write_text(POLICY)
    result = make_plan(load_config(project), name="grants", scratch="local")
    assert result.status == "written"
    body = result.plan_path.read_text()
    assert "GRANT SELECT ON TABLE public.users TO app_user;" in body
    assert "GRANT UPDATE ON TABLE public.users TO app_user;" in body
    (project / "schema" / "sql" / "40_policy.sql").write_text(
        POLICY.replace("SELECT, UPDATE", "SELECT"))
    revoke = make_plan(load_config(project), name="revoke", scratch="local")
    assert "REVOKE UPDATE ON TABLE public.users FROM app_user;" in revoke.plan_path.read_text()


def test_target_preview_brings_the_roles_the_target_uses(project, pg):
    """plan --target builds the models on a scratch server that has the target's roles."""
    from deploy.plans import load_plans

    target = pg.new("roles_target")
    pg.execute(target, load_plans(project / "schema" / "plans")[0].body)
    pg.execute(target, "DO $$BEGIN CREATE ROLE app_user NOLOGIN; "
                       "EXCEPTION WHEN duplicate_object THEN NULL; END$$;" + POLICY)
    (project / "schema" / "sql" / "40_policy.sql").write_text(POLICY)
    preview = run_invoke(project, "plan", "--target", target, "--scratch", "local")
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert "Nothing to do" in preview.stdout


@pytest.mark.parametrize(("setting", "expected"), [
    ('roles = "app_user"', "roles"), ('roles = [""]', "roles"), ("privileges = 1", "privileges"),
])
def test_bad_roles_or_privileges_settings_are_clear_errors(project, setting, expected):
    _configure(project, setting)
    with pytest.raises(DeployError) as bad:
        load_config(project)
    assert f"[tool.deploy] {expected}" in bad.value.message


def test_privilege_kinds_plan_and_land_both_ways(pg):
    """Sequences, columns, schemas, functions, views and grant options: all diffed."""
    from deploy.fingerprint import Exclusions

    pg.execute(pg.new("roles"), "DO $$BEGIN CREATE ROLE app_user NOLOGIN; "
               "EXCEPTION WHEN duplicate_object THEN NULL; END$$;")
    a = ("create table t (id int); create sequence s; "
         "create function f() returns int language sql as 'select 1';")
    b = a + ("grant select on t to app_user with grant option; grant update (id) on t to app_user;"
             "grant usage on sequence s to app_user; grant usage on schema public to app_user;"
             "revoke execute on function f() from public; grant execute on function f() to "
             "app_user; create view v as select id from t; grant select on v to app_user;")
    with_privileges = Exclusions(schemas=("schema_deploy",), privileges=True)
    for source, target in ((a, b), (b, a)):
        sql, refusal, changed = plan(pg, source, target, with_privileges)
        assert refusal is None, refusal
        assert any(c.startswith("privilege ") for c in changed)
