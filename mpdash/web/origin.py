"""Nobody gets in through another browser tab (issue 15).

Every page open in the same browser can send requests to ``127.0.0.1:5000``; two checks keep
them out, in the spirit of Jupyter's:

- **Host allow-list** (DNS rebinding). A hostile page whose name is re-pointed at 127.0.0.1
  becomes "same-origin" with us in the browser's eyes, but its requests still carry *its*
  name in ``Host``. So only the names this server is reached by are served: on a loopback bind
  ``127.0.0.1``, ``localhost``, ``[::1]``; on another bind its address (a wildcard bind: the
  interface address a connection arrived at); plus every ``--allow-host NAME``.
  Checked in a WSGI wrapper around everything, the Socket.IO handshake included (python-engineio
  answers ``/socket.io/`` before Flask's hooks run). The port is not compared: a Docker or SSH
  forward changes it, and the name is what a rebinding attacker controls.
- **Same-origin writes** (cross-site requests). A browser sends a "simple" cross-site POST
  (``text/plain``, a form) without asking, so every state-changing request must declare
  ``application/json`` when it has a body (a bodiless one may declare nothing, so
  ``curl -X DELETE`` keeps working; a page cannot make one without an ``Origin``), and an
  ``Origin``/``Referer``, when present, must name this server; so must ``Sec-Fetch-Site``.
  OPTIONS from a foreign origin is refused too, and nothing here ever grants CORS.
"""
from __future__ import annotations

import html
import json
from urllib.parse import urlsplit

from flask import Flask, jsonify, request
from werkzeug.wrappers import Response

from mpdash.hostnames import canonical as _canonical, host_name, split_host
from mpdash.web.security import HEADERS

__all__ = ["host_name", "init_app", "guard_hosts", "served_names", "split_host"]

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Where the page's own requests come from; "none" is a user typing the URL.
OWN_FETCH_SITES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": "80", "https": "443"}
MAX_SHOWN = 80   # a hostile header is echoed in the error, but never at length


def served_names(environ: dict, extra: frozenset[str] = frozenset()) -> frozenset[str]:
    """The Host names this request may carry: the address its connection reached (the bound
    address; on a wildcard bind the interface the client used) - on 127.0.0.1 or ::1 with
    ``localhost`` and the other loopback name - plus ``extra`` (``--allow-host``). An IP
    literal is safe to serve: a rebinding page's requests carry its own *name*. Without
    Werkzeug's socket (the test client) it is the loopback set, the strictest one."""
    local = "127.0.0.1"
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            local = _canonical(sock.getsockname()[0])
        except (OSError, TypeError, IndexError):
            pass
    names = LOOPBACK_NAMES if local in LOOPBACK_NAMES else frozenset({local})
    return names | extra


def _shown(value: str) -> str:
    return value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "…"


def _refusal(path: str, host: str) -> Response:
    name = split_host(host)
    hint = f"--allow-host {name[0]}" if name else "--allow-host NAME"
    text = (f"mpdash does not answer to the host {_shown(host)!r}: a page of another site "
            f"could be reading this dashboard through DNS rebinding. If this is a name of "
            f"this machine you use on purpose, restart the server with {hint}.")
    if path.startswith(("/api/", "/socket.io")):
        body, mimetype = json.dumps({"error": text}), "application/json"
    else:
        body = (f"<!doctype html><title>mpdash: host refused</title>"
                f"<h1>Host refused</h1><p>{html.escape(text)}</p>\n")
        mimetype = "text/html"
    response = Response(body, status=403, mimetype=mimetype)
    response.headers.update(HEADERS)
    return response


class HostGuard:
    """WSGI wrapper: a Host not on the list gets 403 before any route or Socket.IO sees it."""

    def __init__(self, wsgi_app, extra: frozenset[str]):
        self.wsgi_app = wsgi_app
        self.extra = extra

    def __call__(self, environ, start_response):
        host = environ.get("HTTP_HOST")
        # No Host at all (HTTP/1.0 by hand) is no browser, so no rebinding: served.
        if host is not None:
            parts = split_host(host)
            if parts is None or _canonical(parts[0]) not in served_names(environ, self.extra):
                path = environ.get("PATH_INFO", "")
                return _refusal(path, host)(environ, start_response)
        return self.wsgi_app(environ, start_response)


def guard_hosts(app: Flask) -> None:
    """Wrap the outermost WSGI app (call after Socket.IO installed its own wrapper)."""
    extra = frozenset(host_name(name) for name in app.config.get("MPDASH_ALLOW_HOSTS", ()))
    app.wsgi_app = HostGuard(app.wsgi_app, extra)


def _foreign(url: str) -> bool:
    """An Origin/Referer that is not this server (``null`` included)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    if parts.scheme not in ("http", "https"):
        return True
    theirs = split_host(parts.netloc)
    if theirs is None:
        return True
    if theirs[1] == DEFAULT_PORTS[parts.scheme]:
        theirs = (theirs[0], None)   # Werkzeug's request.host drops a default port too
    return theirs != split_host(request.host)


def _write_refusal() -> str | None:
    """Why this request may not change anything, or None."""
    for header in ("Origin", "Referer"):
        value = request.headers.get(header)
        if value is not None and _foreign(value):
            return (f"cross-origin request refused: {header} {_shown(value)!r} is not this "
                    f"dashboard ({request.host_url.rstrip('/')})")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in OWN_FETCH_SITES:
        return f"cross-origin request refused: Sec-Fetch-Site {_shown(site)!r}"
    if request.method not in WRITE_METHODS:
        return None
    declared = request.headers.get("Content-Type")
    has_body = bool(request.content_length) or "chunked" in \
        request.headers.get("Transfer-Encoding", "").lower()
    if (has_body or declared is not None) and request.mimetype != "application/json":
        return ("a request that changes something must send Content-Type: application/json"
                + (f" (got {_shown(declared)!r})" if declared else ""))
    return None


def init_app(app: Flask) -> None:
    """Install the write check (before the token check: a refused request does nothing)."""

    @app.before_request
    def same_origin_writes():
        if request.method not in WRITE_METHODS and request.method != "OPTIONS":
            return None
        reason = _write_refusal()
        if reason is not None:
            return jsonify({"error": reason}), 403
        return None
