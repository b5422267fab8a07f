"""Socket.IO: push every Hub message to the viewers; take ``start``/``stop`` with acks."""
from __future__ import annotations

import logging

from flask import current_app, request
from flask_socketio import SocketIO, emit
from socketio import packet

from mpdash.lessons import ParamError
from mpdash.runs import EngineBusy, LimitError
from mpdash.web import security

log = logging.getLogger(__name__)


class JsonPacket(packet.Packet):
    """Every message mpdash sends is JSON, never bytes: so no binary attachments to look for.
    python-socketio walks each payload element by element to find some (a call and an
    isinstance per number): a third of the sampler thread's time with 17 processes, ~1 ms a
    frame with 256 (docs/BENCHMARKS.md)."""
    uses_binary_events = False


def init_app(app, socketio: SocketIO) -> None:
    dash = app.extensions["mpdash"]
    hub = dash.hub

    # Emitted straight from the publishing engine thread: ``Hub.publish`` runs under the hub's
    # lock, so messages leave in seq order without a pump thread, and emit() only encodes the
    # packet once and queues it for each client's writer (python-socketio, threading mode).
    # A hop through a queue and a pump thread cost a thread wake-up per message (latency and
    # ~0.15 % of a core at 10 frames/s; docs/BENCHMARKS.md). Nothing is encoded while nobody
    # watches: a viewer who connects later catches up with GET /api/runs/<id>?since=.
    def forward(name, payload):
        if hub.viewers <= 0:
            return
        try:
            socketio.emit(name, payload)
        except Exception:
            log.exception("emit %s", name)

    hub.subscribe(forward)

    roles: dict[str, str] = {}   # sid -> presenter|viewer, decided once at connect

    def refused(action):
        if roles.get(request.sid) != security.PRESENTER:
            return {"error": f"viewers cannot {action} runs", "status": 403}
        return None

    @socketio.on("connect")
    def on_connect(auth=None):
        role = security.socket_role(auth)
        if role is None:
            raise ConnectionRefusedError("a token is required")
        roles[request.sid] = role
        system = {**dash.system(), "role": role}
        lessons = [l["id"] for l in dash.lessons()]
        # Queued under the lock every broadcast takes: no message newer than hello.seq
        # can reach this client ahead of its hello.
        dash.hub.viewer_joined(lambda seq, runs: emit("hello", {
            "seq": seq, "system": system, "lessons": lessons, "runs": runs}))

    @socketio.on("disconnect")
    def on_disconnect(*_):
        roles.pop(request.sid, None)
        dash.hub.viewer_left()

    # start {lesson, params, python?} -> ack: the Run, or {error}
    @socketio.on("start")
    def on_start(data=None):
        denied = refused("start")
        if denied:
            return denied
        if not isinstance(data, dict) or "lesson" not in data:
            return {"error": "start takes {\"lesson\": id, \"params\": {...}}"}
        unknown = set(data) - {"lesson", "params", "python"}
        if unknown:
            return {"error": f"unknown field {sorted(map(str, unknown))[0][:64]!r}"}
        try:
            run = dash.start_lesson(data.get("lesson"), data.get("params"), data.get("python"))
        except ParamError as exc:
            return {"error": str(exc)}
        except LimitError as exc:
            return {"error": str(exc), "status": 429}
        except EngineBusy as exc:
            return {"error": str(exc), "status": 503}
        return dash.hub.snapshot(run)

    # stop {run} -> ack: the final Run, or {error}
    @socketio.on("stop")
    def on_stop(data=None):
        denied = refused("stop")
        if denied:
            return denied
        run_id = data.get("run") if isinstance(data, dict) else None
        if not isinstance(run_id, str) or dash.hub.get(run_id) is None:
            return {"error": "unknown run"}
        try:
            run = dash.engine.stop(run_id)
        except EngineBusy as exc:
            return {"error": str(exc), "status": 503}
        return dash.hub.snapshot(run)
