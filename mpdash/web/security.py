"""Who gets in, and what every response tells the browser.

Open mode (bound to 127.0.0.1, localhost or ::1): everyone who can reach the port is presenter.
Token mode (bound anywhere else, or a presenter token configured): two tokens,

- presenter: everything (start, stop, delete);
- viewer: read-only (the link a teacher hands to a class): 403 on any write, error acks on the
  socket's ``start``/``stop``.

A token is accepted as ``?token=`` (then kept in an HttpOnly, SameSite=Strict cookie; the page
itself is redirected to drop it from the address bar and history), as ``Authorization: Bearer``,
or on the Socket.IO connection (``auth: {token}``, ``?token=`` or the cookie). Comparison is
constant-time (``hmac.compare_digest``). Socket.IO accepts only the page's own origin
(``cors_allowed_origins=None`` in ``create_app``: python-engineio then refuses any other
``Origin``). Other sites' requests (a rebinding ``Host``, cross-origin writes) are refused
before any of this, in ``origin.py``.

Every response carries a strict CSP (no inline script, ``connect-src 'self'``,
``frame-ancestors 'none'``), ``X-Content-Type-Options: nosniff`` and
``Referrer-Policy: no-referrer`` (so a token in a URL never leaks through a Referer).
"""
from __future__ import annotations

import hmac
import json
import re
import secrets
from dataclasses import dataclass

from flask import Flask, current_app, g, jsonify, redirect, request
from flask.json.provider import DefaultJSONProvider

__all__ = ["Access", "init_app", "role", "socket_role", "may_control", "CSP", "COOKIE",
           "generate_token", "is_open_host"]

COOKIE = "mpdash_token"
PRESENTER, VIEWER = "presenter", "viewer"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
OPEN_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_TOKEN = 256
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def is_open_host(host: str) -> bool:
    """Only the usual loopback names are open; 127.0.0.2 or 0.0.0.0 ask for a token."""
    return host in OPEN_HOSTS


def generate_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Access:
    presenter: str | None = None      # None: open mode
    viewer: str | None = None

    @property
    def open(self) -> bool:
        return self.presenter is None

    def role_of(self, token) -> str | None:
        if self.open:
            return PRESENTER
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
            return None
        given = token.encode("utf-8", "replace")
        # Both comparisons always run: the time taken does not tell which token was close.
        is_presenter = hmac.compare_digest(given, self.presenter.encode())
        is_viewer = self.viewer is not None and hmac.compare_digest(given, self.viewer.encode())
        return PRESENTER if is_presenter else VIEWER if is_viewer else None


def access() -> Access:
    return current_app.extensions["mpdash_access"]


def _token_from_request() -> tuple[str | None, bool]:
    """(token, came from the query string)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip(), False
    if "token" in request.args:
        return request.args.get("token"), True
    return request.cookies.get(COOKIE), False


def role() -> str:
    """The caller's role in this request (open mode: presenter)."""
    return getattr(g, "mpdash_role", None) or (PRESENTER if access().open else VIEWER)


def may_control() -> bool:
    return role() == PRESENTER


def socket_role(auth) -> str | None:
    """Role for a Socket.IO connection, or None to refuse it."""
    acc = access()
    if acc.open:
        return PRESENTER
    token = auth.get("token") if isinstance(auth, dict) else None
    if token is None:
        token, _ = _token_from_request()
    return acc.role_of(token)


def viewer_url() -> str | None:
    """The read-only link to hand out; None in open mode (there everyone presents)."""
    acc = access()
    return None if acc.open else f"{request.host_url}?token={acc.viewer}"


class GuardedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, but a body nested deeper than the parser's recursion limit is a
    ValueError (so ``get_json(silent=True)`` answers 400), not a RecursionError (a 500)."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


class SocketJSON:
    """The ``json`` module given to Socket.IO. A packet whose JSON cannot be decoded (nested
    too deeply, a 5000-digit number, ...) still reaches its handler with ``None`` as the data,
    so the client gets its error ack instead of silence."""
    _EVENT = re.compile(r'\s*\[\s*"([A-Za-z0-9_-]{1,64})"')

    @staticmethod
    def dumps(*args, **kwargs):
        return json.dumps(*args, **kwargs)

    @classmethod
    def loads(cls, s, *args, **kwargs):
        try:
            return json.loads(s, *args, **kwargs)
        except (RecursionError, ValueError):
            text = s.decode("utf-8", "replace") if isinstance(s, (bytes, bytearray)) else s
            match = cls._EVENT.match(text)
            if match is None:
                raise ValueError("JSON nested too deeply") from None
            return [match.group(1), None]


def init_app(app: Flask, presenter: str | None = None, viewer: str | None = None) -> Access:
    """Install the checks and headers. ``presenter`` set = token mode (viewer generated if
    not given). Also read from ``app.config["MPDASH_TOKEN"]`` / ``["MPDASH_VIEWER_TOKEN"]``."""
    presenter = presenter or app.config.get("MPDASH_TOKEN") or None
    viewer = viewer or app.config.get("MPDASH_VIEWER_TOKEN") or None
    if presenter is not None and viewer is None:
        viewer = generate_token()
    if presenter is not None and viewer is not None and hmac.compare_digest(presenter, viewer):
        raise ValueError("the viewer token must differ from the presenter token")
    acc = Access(presenter=presenter, viewer=viewer)
    app.extensions["mpdash_access"] = acc
    sort_keys = app.json.sort_keys
    app.json = GuardedJSONProvider(app)
    app.json.sort_keys = sort_keys

    @app.before_request
    def check_token():
        if acc.open:
            g.mpdash_role = PRESENTER
            return None
        token, from_query = _token_from_request()
        who = acc.role_of(token)
        if who is None:
            if request.path.startswith("/api/"):
                return jsonify({"error": "a token is required (?token=... or "
                                         "Authorization: Bearer ...)"}), 401
            return ("mpdash: this dashboard needs the link with its token "
                    "(printed where the server was started).\n", 401,
                    {"Content-Type": "text/plain; charset=utf-8"})
        g.mpdash_role = who
        if request.method in WRITE_METHODS and request.path.startswith("/api/") \
                and who != PRESENTER:
            return jsonify({"error": "viewers can watch but not start, stop or delete runs"}), 403
        if from_query:
            g.mpdash_set_cookie = token
            if request.method == "GET" and request.path == "/":
                return redirect("/", code=303)   # keep the token out of the address bar
        return None

    @app.after_request
    def add_headers(response):
        for key, value in HEADERS.items():
            response.headers.setdefault(key, value)
        token = getattr(g, "mpdash_set_cookie", None)
        if token is not None:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
        return response

    return acc
