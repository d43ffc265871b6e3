"""describe() + fingerprint() of a synthetic schema of N tables vs schemainspect's inspection.

Baseline, same run, same database: `schemainspect.get_inspector(conn)`, which is what migra
does to inspect one side of a diff. Every plan/check/apply fingerprints at least once per
database it diffs, so the fingerprint must not be the bottleneck: target ratio <= 1.0.

Each table: uuid primary key, 5 columns (one a foreign key to the previous table), one
index, a comment. N = 100 and 1000 (100 only with --quick). Tables are created 200 per
transaction (max_locks_per_transaction).

    .venv/bin/python bench/fingerprint_scale.py [--quick] [--profile]
"""

from __future__ import annotations

import sys
import time

from _common import (
    POSTGRES_MAJOR,
    Stats,
    create_synthetic_tables,
    print_table,
    quick_flag,
    quiet_warnings,
    target_line,
)

LIMIT = 1.0


def main() -> int:
    quick = quick_flag()
    profile = "--profile" in sys.argv[1:]
    sizes = [100] if quick else [100, 1000]
    reps = {100: 7, 1000: 5}
    quiet_warnings()

    import psycopg2
    from schemainspect import get_inspector
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from deploy import urls
    from deploy.config import HISTORY_SCHEMA
    from deploy.fingerprint import Exclusions, describe, fingerprint
    from deploy.scratch import open_scratch

    # What the engine passes: its history schema, and a typical table exclusion.
    exclusions = Exclusions(schemas=(HISTORY_SCHEMA,), tables=("alembic_version",))
    ratios: dict[int, float] = {}
    with open_scratch("local", POSTGRES_MAJOR) as server:
        for n in sizes:
            url = server.create_database(f"fp{n}")
            conn = psycopg2.connect(**urls.psycopg2_dsn(url))
            started = time.perf_counter()
            create_synthetic_tables(conn, n)
            setup = time.perf_counter() - started
            conn.autocommit = True
            engine = create_engine(urls.sqlalchemy_url(url), poolclass=NullPool)
            ours, theirs = [], []
            objects = 0
            with engine.connect() as sa_conn:
                # Warm-up both (catalog caches, imports), then interleave.
                objects = len(describe(conn, exclusions))
                get_inspector(sa_conn, exclude_schema=HISTORY_SCHEMA)
                sa_conn.rollback()
                for _ in range(1 if quick and n > 100 else reps[n]):
                    started = time.perf_counter()
                    get_inspector(sa_conn, exclude_schema=HISTORY_SCHEMA)
                    theirs.append(time.perf_counter() - started)
                    sa_conn.rollback()
                    started = time.perf_counter()
                    fingerprint(describe(conn, exclusions))
                    ours.append(time.perf_counter() - started)
                if profile and n == sizes[-1]:
                    profile_describe(conn, exclusions, describe, fingerprint)
            engine.dispose()
            conn.close()
            server.drop_database(f"fp{n}")
            ours_s, theirs_s = Stats(ours), Stats(theirs)
            ratios[n] = ours_s.median / theirs_s.median
            print_table(
                f"N={n} tables ({objects} described objects; setup {setup:.1f}s)",
                [
                    ("describe+fingerprint", ours_s, "s"),
                    ("schemainspect get_inspector", theirs_s, "s"),
                ],
            )
            print(f"  median ratio {ratios[n]:.2f}; "
                  f"{ours_s.median / n * 1000:.2f} ms/table vs {theirs_s.median / n * 1000:.2f}")
    largest = sizes[-1]
    print(target_line(
        f"fingerprint vs schemainspect inspection at N={largest} tables",
        ratios[largest],
        LIMIT,
    ))
    return 0


def profile_describe(conn, exclusions, describe, fingerprint) -> None:  # noqa: ANN001
    """Where describe() spends its time: per catalog query (server + transfer) and in Python."""
    import cProfile
    import pstats

    from deploy import fingerprint as fp_module

    params = {"system": list(fp_module._SYSTEM_SCHEMAS), "skip_schemas": list(exclusions.schemas)}
    print("\n  describe() per query kind (one run; describe sends them as one statement):")
    with conn.cursor() as cur:
        cur.execute("SELECT set_config('search_path', 'pg_catalog', false), "
                    "set_config('jit', 'off', false)")
        for kind, query in fp_module._queries(conn.server_version).items():
            started = time.perf_counter()
            cur.execute(query, params)
            rows = cur.fetchall()
            print(f"    {kind:25} {time.perf_counter() - started:7.3f}s  {len(rows)} rows")
        cur.execute("RESET search_path; RESET jit")
    profiler = cProfile.Profile()
    profiler.enable()
    fingerprint(describe(conn, exclusions))
    profiler.disable()
    print("  cProfile of describe+fingerprint, top 8 by own time:")
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:8]
    for (filename, line, name), (_, calls, tottime, cumtime, _) in rows:
        where = filename.rsplit("/", 1)[-1]
        print(f"    {tottime:7.3f}s own {cumtime:7.3f}s cum {calls:7d}x  {where}:{line}({name})")


if __name__ == "__main__":
    sys.exit(main())
