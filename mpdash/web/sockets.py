"""Socket.IO: push every Hub message to the viewers; take ``start``/``stop`` with acks."""
from __future__ import annotations

import logging
import queue

from flask import current_app
from flask_socketio import SocketIO, emit

from mpdash.lessons import ParamError
from mpdash.runs import LimitError

log = logging.getLogger(__name__)


def init_app(app, socketio: SocketIO) -> None:
    dash = app.extensions["mpdash"]
    outbox: queue.SimpleQueue = queue.SimpleQueue()

    # The engine's threads only enqueue; this one thread talks to the sockets, in seq order.
    def pump():
        while True:
            name, payload = outbox.get()
            if name is None:
                return
            try:
                socketio.emit(name, payload)
            except Exception:
                log.exception("emit %s", name)

    dash.hub.subscribe(lambda name, payload: outbox.put((name, payload)))
    socketio.start_background_task(pump)
    app.extensions["mpdash_outbox"] = outbox

    @socketio.on("connect")
    def on_connect(auth=None):
        with dash.hub.lock:
            dash.hub.viewers += 1
            hello = {"seq": dash.hub.seq, "system": {**dash.system(), "role": "presenter"},
                     "lessons": [l["id"] for l in dash.lessons()],
                     "runs": dash.hub.summaries(limit=200)}
        emit("hello", hello)

    @socketio.on("disconnect")
    def on_disconnect(*_):
        with dash.hub.lock:
            dash.hub.viewers = max(0, dash.hub.viewers - 1)

    # start {lesson, params} -> ack: the Run, or {error}
    @socketio.on("start")
    def on_start(data=None):
        if not isinstance(data, dict) or "lesson" not in data:
            return {"error": "start takes {\"lesson\": id, \"params\": {...}}"}
        unknown = set(data) - {"lesson", "params"}
        if unknown:
            return {"error": f"unknown field {sorted(map(str, unknown))[0][:64]!r}"}
        try:
            run = dash.engine.start_lesson(data.get("lesson"), data.get("params"))
        except ParamError as exc:
            return {"error": str(exc)}
        except LimitError as exc:
            return {"error": str(exc), "status": 429}
        with dash.hub.lock:
            return run.to_json()

    # stop {run} -> ack: the final Run, or {error}
    @socketio.on("stop")
    def on_stop(data=None):
        run_id = data.get("run") if isinstance(data, dict) else None
        if not isinstance(run_id, str) or dash.hub.get(run_id) is None:
            return {"error": "unknown run"}
        run = dash.engine.stop(run_id)
        with dash.hub.lock:
            return run.to_json()
