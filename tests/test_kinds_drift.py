"""`status` sees drift in the kinds that used to be invisible (issue 8, "Drift that is not
seen"), and stays at head for what is left out on purpose (ALTER DATABASE … SET)."""

from __future__ import annotations

from pathlib import Path

from conftest import Databases, run_invoke

from deploy.applier import apply_plans
from deploy.config import load_config

DRIFTS = [
    ("CREATE STATISTICS decks_stats ON id, title FROM public.decks",
     "statistics public.decks_stats"),
    ("ALTER TABLE public.decks ALTER COLUMN title SET STATISTICS 400",
     "column-option public.decks.title"),
    ("ALTER TABLE public.decks ALTER COLUMN id SET (n_distinct = -1)",
     "column-option public.decks.id"),
    ("ALTER TABLE public.decks ALTER COLUMN title SET COMPRESSION lz4",
     "column-option public.decks.title"),
    ("ALTER TABLE public.decks SET (toast.autovacuum_enabled = false)",
     "relation-option public.decks"),
    ("CREATE PUBLICATION decks_pub FOR TABLE public.decks", "publication decks_pub"),
    ("CREATE TEXT SEARCH CONFIGURATION public.cards (COPY = simple)",
     "text-search-configuration public.cards"),
    ("CREATE FUNCTION public.eq3(int, int) RETURNS bool LANGUAGE sql AS 'select $1 = $2';"
     "CREATE OPERATOR public.=== (leftarg = int, rightarg = int, function = public.eq3)",
     "operator public.===(integer,integer)"),
]


def test_status_sees_drift_in_every_newly_fingerprinted_kind(pg: Databases, project: Path):
    url = pg.new("kinds_drift")
    apply_plans(load_config(project), target=url)
    assert run_invoke(project, "status", "--target", url).returncode == 0
    for sql, key in DRIFTS:
        pg.execute(url, sql)
        drift = run_invoke(project, "status", "--target", url)
        assert drift.returncode == 4, (sql, drift.stdout, drift.stderr)
        assert key in drift.stdout, (sql, drift.stdout)
    dbname = pg.query(url, "SELECT current_database()")[0][0]
    pg.execute(url, f'ALTER DATABASE "{dbname}" SET work_mem = \'64MB\'')
    # Left out on purpose (README): a database setting is not schema, so no new drift line.
    after = run_invoke(project, "status", "--target", url)
    assert "work_mem" not in after.stdout
