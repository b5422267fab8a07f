"""The web layer: translates between HTTP / Socket.IO and the Dashboard. Owns no logic."""
from __future__ import annotations

from flask import Flask
from flask_socketio import SocketIO

from mpdash import paths
from mpdash.dashboard import Dashboard

__all__ = ["create_app"]


def create_app(dashboard: Dashboard | None = None, test_config: dict | None = None) -> Flask:
    """Build the Flask app and its SocketIO; ``app.extensions["socketio"]`` serves it."""
    # The page's files: at the checkout's top, or inside the package once installed.
    app = Flask(__name__, template_folder=paths.TEMPLATES_DIR, static_folder=paths.STATIC_DIR,
                static_url_path="/static")
    app.config.from_mapping(JSON_SORT_KEYS=False, MAX_CONTENT_LENGTH=64 * 1024)
    if test_config:
        app.config.update(test_config)
    app.json.sort_keys = False
    # An id is one path segment: "/api/runs/%2F0" must be an unknown run (404), not a 308
    # redirect to "/api/runs/0" that Werkzeug's slash merging would make of it.
    app.url_map.merge_slashes = False
    app.extensions["mpdash"] = dashboard or Dashboard()

    from mpdash.web import api, origin, pages, security, sockets
    origin.init_app(app)     # same-origin writes: checked before anything else runs
    security.init_app(app)   # tokens (non-loopback bind), security headers
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    # cors_allowed_origins=None: python-engineio then accepts only the page's own origin.
    socketio = SocketIO(app, async_mode="threading", cors_allowed_origins=None,
                        json=security.SocketJSON, serializer=sockets.JsonPacket)
    sockets.init_app(app, socketio)
    # Outermost, around Socket.IO's own WSGI wrapper: its handshake is refused for a rebinding
    # Host too. MPDASH_ALLOW_HOSTS (--allow-host) adds names to the bound address's.
    origin.guard_hosts(app)
    return app


def dashboard_of(app: Flask) -> Dashboard:
    return app.extensions["mpdash"]
