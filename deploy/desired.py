"""The desired state: SQLAlchemy metadata + extensions + `sql/*.sql`, built in a scratch DB."""

from __future__ import annotations

import gc
import importlib
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from sqlalchemy import MetaData, create_engine
from sqlalchemy.exc import NoReferencedColumnError, NoReferencedTableError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from deploy import renames, urls
from deploy.background import Background
from deploy.config import Config
from deploy.errors import DeployError
from deploy.plans import clean_text
from deploy.renames import RenameHint
from deploy.statements import StatementError, split


@dataclass(frozen=True)
class DesiredSchema:
    """Everything that defines the target schema, loaded from the project."""

    metadata: MetaData
    extensions: tuple[str, ...]
    sql_files: tuple[Path, ...]
    # `renamed_from` hints of the models (deploy/renames.py).
    renames: tuple[RenameHint, ...] = ()
    # The top-level package the models were imported from (release_models forgets it).
    package: str = ""
    # compile_models' answers by PostgreSQL major: the cache key and the build share one
    # compilation (a DesiredSchema is a snapshot: its metadata is not changed after loading).
    compiled: dict[int, CompiledModels] = field(
        default_factory=dict, init=False, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class CompiledModels:
    """The statements `create_all` sends for the models, compiled without a server."""

    # Each as the psycopg2 dialect compiles it: `%` doubled (executing with an empty
    # parameter dict undoes it, as SQLAlchemy does); CREATE INDEX runs sorted.
    statements: tuple[str, ...]
    # True when every statement is DDL without parameters (no INSERT or query from an event
    # listener): then running them as one script is what create_all does.
    plain: bool


def load_desired(config: Config) -> DesiredSchema:
    """Import the metadata (and extension list) named in the config and list the SQL files.

    Each module is imported once: a big app's models can take seconds to import."""
    metadata = _import_object(config, config.metadata, "metadata")
    if not isinstance(metadata, MetaData):
        raise DeployError(
            f"[tool.deploy] metadata = {config.metadata!r} is a {type(metadata).__name__}, not a "
            "SQLAlchemy MetaData. Point it at your models' MetaData, e.g. 'schema:metadata' "
            "(Base.metadata)."
        )
    extensions: tuple[str, ...] = ()
    if config.extensions:
        # Usually in the models' package: forgetting it again would import the models twice.
        same = _package(config.extensions) == _package(config.metadata)
        value = _import_object(config, config.extensions, "extensions", fresh=not same)
        if not isinstance(value, list | tuple) or not all(isinstance(x, str) for x in value):
            raise DeployError(
                f"[tool.deploy] extensions = {config.extensions!r} must name a list of extension "
                'names, e.g. EXTENSIONS = ("uuid-ossp",).'
            )
        extensions = tuple(value)
    sql_files: tuple[Path, ...] = ()
    if config.sql_dir.exists():
        if not config.sql_dir.is_dir():
            raise DeployError(f"[tool.deploy] sql = {config.sql_dir} is not a directory.")
        sql_files = tuple(sorted(config.sql_dir.glob("*.sql"), key=lambda p: p.name))
    return DesiredSchema(metadata, extensions, sql_files, renames.read_hints(metadata),
                         package=_package(config.metadata))


def release_models(desired: DesiredSchema) -> None:
    """Let the models go once the desired database is built: `desired` keeps its
    extensions, SQL files, rename hints and compiled DDL, its metadata becomes empty, and
    the models' package is forgotten (imported again by the next load_desired).

    Why: a big app's models are the largest thing a plan holds (~30 MB of SQLAlchemy
    objects at 1000 tables) and nothing after the build reads them; freed here, the memory
    serves the diff and the proof instead of adding to the peak. Their objects form cycles,
    so only a collection frees them. Nothing is freed that the app's own code still holds."""
    object.__setattr__(desired, "metadata", MetaData())  # frozen: no field may change but this
    if desired.package:
        for name in [n for n in sys.modules
                     if n == desired.package or n.startswith(desired.package + ".")]:
            del sys.modules[name]
    gc.collect()


def _package(spec: str) -> str:
    return spec.partition(":")[0].split(".")[0]


def _import_object(config: Config, spec: str, key: str, *, fresh: bool = True) -> object:
    module_name, _, attribute = spec.partition(":")
    # The project root must win over whatever else is on sys.path (invoke adds the tasks.py
    # directory, an installed package may carry a module of the same name).
    root = str(config.root)
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    if fresh:
        _forget_stale_modules(module_name.split(".")[0], config.root)
    try:
        with gc_paused():
            module = importlib.import_module(module_name)
    except Exception as exc:
        where = _last_project_frame(exc, config.root)
        raise DeployError(
            f"Could not import {module_name!r} (from [tool.deploy] {key} = {spec!r}): "
            f"{type(exc).__name__}: {exc}{where}. Fix the models so that "
            f"`python -c 'import {module_name}'` works from {config.root}."
        ) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise DeployError(
            f"Module {module_name!r} has no attribute {attribute!r} (from [tool.deploy] {key} = "
            f"{spec!r}). Export it from the module or change the setting."
        ) from None


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (restored after it).

    Building a big app's models allocates millions of objects and nothing to collect; the
    collector's passes over them cost ~30% of the import (0.3 s at 1000 tables)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _forget_stale_modules(package: str, root: Path) -> None:
    """Drop an already-imported copy of the models so edits (or another project) are seen."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def _last_project_frame(exc: BaseException, root: Path) -> str:
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(str(root))
    ]
    if not frames:
        return ""
    frame = frames[-1]
    return f" at {Path(frame.filename).relative_to(root)}:{frame.lineno}"


def compile_models(desired: DesiredSchema, major: int) -> CompiledModels:
    """The models' DDL as `create_all` would send it to a PostgreSQL `major` server, compiled
    without one (a mock engine records every statement, event listeners' DDL included).

    Compiled once per DesiredSchema and major; raises what compiling raises (a listener that
    needs a live connection)."""
    known = desired.compiled.get(major)
    if known is not None:
        return known
    from sqlalchemy import create_mock_engine
    from sqlalchemy.schema import CreateIndex, ExecutableDDLElement

    statements: list[str] = []
    index_run: list[str] = []  # consecutive CREATE INDEX statements
    plain = True

    def record(sql: object, *_args: object, **_kwargs: object) -> None:
        nonlocal plain
        compile_ = getattr(sql, "compile", None)
        text = str(compile_(dialect=engine.dialect)) if compile_ else str(sql)
        # DDL renders every value inline; anything else (an INSERT, a SELECT) may carry
        # parameters or need its result: only create_all runs that as the listener meant.
        plain = plain and isinstance(sql, ExecutableDDLElement)
        if isinstance(sql, CreateIndex):
            index_run.append(text)
            return
        flush()
        statements.append(text)

    def flush() -> None:
        # A table's indexes live in a set: create_all emits them in hash order, which
        # changes from process to process. Their order changes nothing in the schema.
        statements.extend(sorted(index_run))
        index_run.clear()

    engine = create_mock_engine("postgresql+psycopg2://", record)  # type: ignore[arg-type]
    _as_if_connected(engine.dialect, major)
    with gc_paused():  # thousands of compiler objects, no garbage worth a collection pass
        desired.metadata.create_all(engine, checkfirst=False)  # type: ignore[arg-type]
    flush()
    compiled = CompiledModels(tuple(statements), plain)
    desired.compiled[major] = compiled
    return compiled


def _as_if_connected(dialect: object, major: int) -> None:
    """Set what the PostgreSQL dialect's initialize() learns from a `major` server (SQLAlchemy
    2.1), so the mock compiles what create_all on that server compiles. The build checks the
    server's side of it (standard_conforming_strings, max_identifier_length) before using it."""
    version = (major, 0)
    settings = {
        "server_version_info": version,
        "supports_smallserial": True,
        "_supports_drop_index_concurrently": True,
        "supports_identity_columns": version >= (10,),
        "_supports_jsonb_subscripting": version >= (14,),
        "supports_virtual_generated_columns": version >= (18,),
        "_backslash_escapes": False,  # standard_conforming_strings = on
    }
    for name, value in settings.items():
        setattr(dialect, name, value)


def build(desired: DesiredSchema, url: object, *, release: bool = False,
          meanwhile: Callable[[], object] | None = None) -> None:
    """Create the desired schema in the (empty) database at `url`, in one transaction.

    The models' DDL goes to the server as one script, compiled once (shared with the cache
    key); a script PostgreSQL rejects runs again statement by statement, which names the
    failing one. Models whose DDL is not plain (a listener inserts or queries, or needs a
    live connection) are built by `create_all`. `release`: let the models go
    (release_models) once they are no longer needed - while the server runs the script.
    `meanwhile`: more Python work for that wait (it runs once, whatever path the build takes)."""
    conn = psycopg2.connect(**urls.psycopg2_dsn(url))  # type: ignore[arg-type]
    try:
        statements = _models_statements(desired, conn)
        if statements is not None:
            with conn.cursor() as cur:
                for extension in desired.extensions:
                    _run(cur, f'CREATE EXTENSION IF NOT EXISTS "{extension}"',
                         f"extension {extension}")
                # A statement may end in a -- comment: the separator starts on its own line.
                script = "\n;\n".join(statements)
                # The server works, the GIL is free: freeing the models costs no time.
                sent = _beside(lambda: _ran(cur, script),
                               lambda: _while_building(desired, release, meanwhile))
                release = False
                meanwhile = None
            if not sent:
                _rollback(conn)
                with conn.cursor() as cur:
                    for extension in desired.extensions:
                        _run(cur, f'CREATE EXTENSION IF NOT EXISTS "{extension}"',
                             f"extension {extension}")
                    for statement in statements:
                        _one_statement(cur, statement)
            with conn.cursor() as cur:
                _run_sql_files(cur, desired)
            conn.commit()
            return
    finally:
        conn.close()
    _build_with_create_all(desired, url)
    _while_building(desired, release, meanwhile)


def _while_building(desired: DesiredSchema, release: bool,
                    meanwhile: Callable[[], object] | None) -> None:
    if release:
        release_models(desired)
    if meanwhile is not None:
        meanwhile()


def _beside(main: Callable[[], bool], other: Callable[[], None]) -> bool:
    """main() in a thread while other() runs here; main's answer (its exception re-raised)."""
    job = Background(main, "build-script")
    try:
        other()
    finally:
        job.wait()
    return job.result()


def _rollback(conn: psycopg2.extensions.connection) -> None:
    try:
        conn.rollback()
    except psycopg2.Error as exc:  # the server went away: say so, as create_all would
        raise DeployError(
            f"The scratch server failed while building the desired schema: {str(exc).strip()}. "
            "Run the same command again."
        ) from None


def _one_statement(cur: object, statement: str) -> None:
    """One compiled statement of the models, as SQLAlchemy's create_all sends it; a
    statement PostgreSQL rejects is a DeployError that shows it."""
    shown = statement.replace("%%", "%")
    try:
        try:
            cur.execute(statement, {})  # type: ignore[attr-defined]
        except (ValueError, TypeError, LookupError):  # psycopg2 could not format it
            cur.execute(shown)  # type: ignore[attr-defined]
    except psycopg2.Error as exc:
        raise DeployError(
            f"PostgreSQL rejected the models' DDL: {str(exc).strip()}. Fix the model "
            "definitions (the failing statement is shown below) and run again.",
            details=shown,
        ) from None


def _models_statements(desired: DesiredSchema,
                       conn: psycopg2.extensions.connection) -> tuple[str, ...] | None:
    """The compiled models' DDL for this server, or None when only create_all can build
    them (see build)."""
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('server_version_num')::int / 10000, "
                    "current_setting('standard_conforming_strings'), "
                    "current_setting('max_identifier_length')::int")
        major, standard_strings, max_identifier = cur.fetchone()
    # What compile_models assumed of the server (SQLAlchemy's defaults for PostgreSQL).
    if standard_strings != "on" or max_identifier != 63:
        return None
    try:
        compiled = compile_models(desired, major)
    except Exception:  # a listener that needs a live connection: create_all gives it one
        return None
    if not compiled.plain or not compiled.statements:
        return None
    return compiled.statements


def _ran(cur: object, script: str) -> bool:
    """Run the models' script; False (the transaction then needs a rollback) when PostgreSQL
    or psycopg2's parameter formatting refuses it."""
    try:
        # The empty dict makes psycopg2 format the text, turning the dialect's `%%` back
        # into `%` exactly as SQLAlchemy's execution of each statement does.
        cur.execute(script, {})  # type: ignore[attr-defined]
    except (psycopg2.Error, ValueError, TypeError, LookupError):
        return False
    return True


def _build_with_create_all(desired: DesiredSchema, url: object) -> None:
    """build() through SQLAlchemy's create_all, one statement at a time (one transaction)."""
    engine = create_engine(urls.sqlalchemy_url(url), poolclass=NullPool)  # type: ignore[arg-type]
    try:
        with engine.begin() as conn:
            # The raw cursor shares the SQLAlchemy transaction; it sends SQL files untouched
            # (no parameter parsing), so a % or a $$ body in them is safe.
            cur = conn.connection.dbapi_connection.cursor()
            for extension in desired.extensions:
                _run(cur, f'CREATE EXTENSION IF NOT EXISTS "{extension}"', f"extension {extension}")
            try:
                desired.metadata.create_all(conn, checkfirst=False)
            except SQLAlchemyError as exc:
                raise _model_error(exc) from None
            _run_sql_files(cur, desired)
    finally:
        engine.dispose()


def _run_sql_files(cur: object, desired: DesiredSchema) -> None:
    for path in desired.sql_files:
        sql = clean_text(path, path.read_bytes(), "SQL file")
        if _has_statements(sql):  # an empty or comment-only file contributes nothing
            _run(cur, sql, path.name)


def _has_statements(sql: str) -> bool:
    """False for a file with nothing but whitespace and comments (libpq refuses to send it)."""
    try:
        return bool(split(sql))
    except StatementError:
        return True  # let the server report the syntax error, with its position


def _model_error(exc: SQLAlchemyError) -> DeployError:
    """What went wrong in the models' DDL, and what to do, whether PostgreSQL or SQLAlchemy
    itself (a ForeignKey to a table or column no model defines) refused it."""
    if isinstance(exc, NoReferencedTableError | NoReferencedColumnError):
        return DeployError(
            f"A foreign key in the models points to something no model defines: {exc}. Fix the "
            "ForeignKey(\"table.column\") target (it names the table, i.e. __tablename__, not "
            "the class) or add the missing model, then run again."
        )
    original = getattr(exc, "orig", None)
    statement = str(getattr(exc, "statement", "") or "")
    if original is None:
        return DeployError(
            f"SQLAlchemy could not create the models' DDL: {type(exc).__name__}: {exc}. Fix the "
            "model definitions and run again."
        )
    shown = " (the failing statement is shown below)" if statement else ""
    return DeployError(
        f"PostgreSQL rejected the models' DDL: {str(original).strip()}. Fix the model "
        f"definitions{shown} and run again.",
        details=statement,
    )


def _run(cur: object, sql: str, where: str) -> None:
    try:
        cur.execute(sql)  # type: ignore[attr-defined]
    except psycopg2.Error as exc:
        position = ""
        if exc.diag and exc.diag.statement_position:
            offset = int(exc.diag.statement_position)
            position = f" (line {sql.count(chr(10), 0, offset) + 1})"
        raise DeployError(
            f"{where}{position} failed while building the desired schema: "
            f"{(exc.pgerror or str(exc)).strip()}. Fix the file and run again."
        ) from None
