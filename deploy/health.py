"""A tiny HTTP endpoint for Railway's health check: is the live schema where the code expects?

`GET /healthz` answers 200 only when the live schema is at the head of the plans, or at its
expanded state with only the head plan's contract part pending (503 otherwise, with the
reason), so Railway holds back a deploy whose database is not ready.
`GET /status` returns the same JSON document as `invoke status --format json` to a request
that sends `Authorization: Bearer $DEPLOY_STATUS_TOKEN`; anyone else (the endpoint is often
public on Railway) gets only the state and the head: no history rows with user@host, no
error texts with host names, no object names.
The status is cached for a couple of seconds: health checks must not hammer the database.
Standard library only (http.server); passwords never reach a response or the log.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

from deploy import urls
from deploy.config import Config
from deploy.errors import DeployError
from deploy.output import error_data, json_document, payload
from deploy.status import read_status
from deploy.views import status_document

DEFAULT_PORT = 8080
TOKEN_VARIABLE = "DEPLOY_STATUS_TOKEN"
CACHE_SECONDS = 2.0
CONNECT_WAIT = 2.0  # a health check that waits longer than this is already failing


class StatusCache:
    """`invoke status --format json`, computed at most once per `ttl` seconds."""

    def __init__(
        self,
        config: Config,
        target: str | None = None,
        ttl: float = CACHE_SECONDS,
        wait: float = CONNECT_WAIT,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.target = target
        self.ttl = ttl
        self.wait = wait
        self._log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self._lock = threading.Lock()
        self._value: dict[str, object] | None = None
        self._at = 0.0
        self._last_state: str | None = None

    def get(self) -> dict[str, object]:
        """The current status document (state, exit_code, …; status "error" when unreadable)."""
        with self._lock:  # one refresh at a time; concurrent requests share its result
            if self._value is None or time.monotonic() - self._at >= self.ttl:
                self._value = self._compute()
                self._at = time.monotonic()
            return self._value

    def _compute(self) -> dict[str, object]:
        try:
            # serve has no --wait flag: the advice must not suggest one.
            data = payload(status_document(read_status(self.config, target=self.target,
                                                       wait=self.wait, wait_option=None)))
        except DeployError as exc:
            data = error_data(exc)
        except psycopg2.Error as exc:  # e.g. the server went away in the middle of a read
            data = error_data(DeployError(f"Reading the status failed: {exc}"))
        document = json.loads(json_document("status", data))  # the masked `status` document
        state = str(document.get("state") or document.get("status"))
        if state != self._last_state:  # log changes, not every probe
            reason = document.get("error") or document.get("live_fingerprint")
            self._log(urls.mask(f"schema status: {state} ({reason})"))
            self._last_state = state
        return document


def healthy(document: dict[str, object]) -> bool:
    """True when the live schema is at the head, ahead of it through recorded plans, or at the
    head's expanded state with only its contract part pending."""
    # "ahead": apply chose to leave a newer, expand-only state in place for this older code.
    # "contract-pending": the code runs on `expanded`; the contract removes what it no
    # longer uses, at the next deploy.
    return document.get("state") in ("head", "ahead", "contract-pending")


def minimal(document: dict[str, object]) -> dict[str, object]:
    """What an unauthenticated client may see: the state and the head, nothing that names a
    person, a host, an object or an error."""
    state = document.get("state") or ("error" if document.get("status") == "error" else None)
    exit_code = document.get("exit_code")
    return {
        "version": document.get("version"),
        "command": "status",
        "state": state,
        "exit_code": exit_code,
        "head": document.get("head"),
        "full_document": f"send 'Authorization: Bearer <{TOKEN_VARIABLE}>'",
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "schema-deploy"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._respond(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(body=False)

    def _authorized(self) -> bool | None:
        """True: the request sent the configured token; None: it sent none; False: a wrong one."""
        sent = self.headers.get("Authorization")
        if not sent:
            return None
        token = self.server.token
        scheme, _, value = sent.strip().partition(" ")
        if not token or scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.strip().encode(), token.encode())

    def _respond(self, body: bool) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if path in ("/healthz", "/status"):
            authorized = self._authorized()
            if authorized is False:  # a wrong token is a mistake worth seeing, not a fallback
                self._send(401, "text/plain", "unauthorized: wrong bearer token\n", body,
                           [("WWW-Authenticate", 'Bearer realm="schema-deploy"')])
                return
            document = self.server.cache.get()
            error = document.get("status") == "error"
            if path == "/healthz" and healthy(document):
                detail = self._detail(document, authorized)
                self._send(200, "text/plain", f"ok: schema at head{detail}\n", body)
            elif path == "/healthz":
                if error:  # the error text names hosts and databases: only for the token holder
                    reason = (document.get("error") if authorized else
                              "the schema status cannot be read (see the server log)")
                else:
                    reason = self._reason(document)
                self._send(503, "text/plain", f"not ready: {reason}\n", body)
            else:
                shown = document if authorized else minimal(document)
                self._send(503 if error else 200, "application/json",
                           json.dumps(shown, indent=2, default=str) + "\n", body)
        elif path == "/":
            index = {"endpoints": {
                "/healthz": "200 when the schema is at head, else 503",
                "/status": f"state and head; with 'Authorization: Bearer <{TOKEN_VARIABLE}>' "
                           "the `invoke status --format json` document",
            }}
            self._send(200, "application/json", json.dumps(index) + "\n", body)
        else:
            self._send(404, "text/plain", "not found\n", body)

    @staticmethod
    def _detail(document: dict[str, object], authorized: bool | None) -> str:
        """'; contract pending: …' when only a contract part is pending; the plan's name only
        for the token holder (plan names stay out of what anyone may read, like /status)."""
        if document.get("state") != "contract-pending":
            return ""
        if authorized:
            return f"; {document.get('detail')}"
        return "; contract pending, runs at the next deploy"

    @staticmethod
    def _reason(document: dict[str, object]) -> str:
        state = document.get("state")
        if state == "pending" and document.get("contract_pending"):
            return ("plan(s) wait behind a pending contract part, which runs at the next deploy "
                    "(or `invoke apply --contract`)")
        if state == "pending":
            return f"{len(document.get('pending') or [])} plan(s) pending; run `invoke apply`"
        if state == "drift":
            return "drift: the live schema matches no reviewed state; see /status"
        if state == "no-plans":
            return "no plans found"
        return str(state)

    def _send(self, code: int, content_type: str, text: str, body: bool,
              headers: list[tuple[str, str]] | None = None) -> None:
        payload = urls.mask(text).encode("utf-8")
        self.send_response(code)
        for name, value in headers or []:
            self.send_header(name, value)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if self.server.quiet:
            return
        sys.stderr.write(urls.mask(f"{self.address_string()} {format % args}") + "\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], cache: StatusCache, quiet: bool,
                 family: socket.AddressFamily, token: str | None) -> None:
        self.address_family = family
        self.cache = cache
        self.quiet = quiet
        self.token = token
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            # Dual stack: Railway's private network is IPv6, its health checker may use IPv4.
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def make_server(
    config: Config,
    port: int | None = None,
    *,
    target: str | None = None,
    host: str | None = None,
    ttl: float = CACHE_SECONDS,
    quiet: bool = False,
    token: str | None = None,
) -> ThreadingHTTPServer:
    """An HTTP server for /healthz and /status, bound but not yet serving.

    `token` (default: $DEPLOY_STATUS_TOKEN) unlocks the full /status document.
    """
    port = port if port is not None else _port_from_env()  # 0: any free port
    token = token if token is not None else os.environ.get(TOKEN_VARIABLE, "").strip() or None
    cache = StatusCache(config, target=target, ttl=ttl)
    if host is not None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return _Server((host, port), cache, quiet, family, token)
    try:
        return _Server(("::", port), cache, quiet, socket.AF_INET6, token)
    except OSError:  # no IPv6 on this machine
        return _Server(("0.0.0.0", port), cache, quiet, socket.AF_INET, token)


def serve(config: Config, port: int | None = None, *, target: str | None = None) -> None:
    """Serve /healthz and /status on `port` (else $PORT, else 8080) until interrupted."""
    if not (target or os.environ.get("DATABASE_URL")):
        # Serving anyway would answer 503 forever, with advice about flags serve lacks.
        raise DeployError(
            "invoke serve needs the database whose schema it reports: set DATABASE_URL "
            "(Railway sets it for the service; to try it locally, `invoke sandbox` prints one) "
            "and start it again."
        )
    try:
        server = make_server(config, port, target=target)
    except OSError as exc:
        raise DeployError(f"Cannot listen on port {port or _port_from_env()}: {exc}.") from None
    bound_port = server.server_address[1]
    where = _describe_target(target)
    full = ("full /status for requests with its bearer token" if server.token  # type: ignore[attr-defined]
            else f"minimal /status (set {TOKEN_VARIABLE} for the full document)")
    print(f"serving /healthz and /status on port {bound_port} for {where}; {full}",
          file=sys.stderr, flush=True)
    server.cache.get()  # type: ignore[attr-defined]  # log the initial state right away
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _port_from_env() -> int:
    raw = os.environ.get("PORT", "")
    if not raw:
        return DEFAULT_PORT
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise DeployError(f"PORT={raw!r} is not a TCP port number.")
    return int(raw)


def _describe_target(target: str | None) -> str:
    raw = target or os.environ.get("DATABASE_UNPOOLED_URL") or os.environ.get("DATABASE_URL")
    if not raw:
        return "(no DATABASE_URL set: /healthz will answer 503)"
    return urls.describe(raw)
