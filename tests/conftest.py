"""Shared fixtures: a Dashboard, the Flask app, an HTTP client and a live server on a free port.

Every fixture that can start processes checks, when the test ends, that none is left.
"""
from __future__ import annotations

import os
import threading

import pytest

from mpdash.dashboard import Dashboard
from mpdash.state import Limits
from tests.leaks import assert_none_left


@pytest.fixture
def dashboard():
    dash = Dashboard(Limits())
    yield dash
    dash.close()
    assert_none_left(os.getpid())


@pytest.fixture
def app(dashboard):
    from mpdash.web import create_app
    return create_app(dashboard, {"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_server(app):
    """The app served by a threaded Werkzeug server on a free port; yields its base URL."""
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
