"""The HTTP API of the contract (docs/API.md): lessons, runs, system."""
from __future__ import annotations

import json
import re

from flask import Blueprint, Response, abort, current_app, jsonify, request

from mpdash import export
from mpdash.lessons import ParamError
from mpdash.runs import EngineBusy, LimitError

bp = Blueprint("api", __name__, url_prefix="/api")

RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _dash():
    return current_app.extensions["mpdash"]


def _error(status: int, message: str):
    return jsonify({"error": message}), status


def _run_or_404(run_id: str):
    """The run, or the request ends here with a JSON 404."""
    run = _dash().hub.get(run_id) if RUN_ID.fullmatch(run_id) else None
    if run is None:
        answer = jsonify({"error": f"no run {run_id[:40]!r}"})
        answer.status_code = 404
        abort(answer)
    return run


# App-wide, not per blueprint: a URL no route matches (``/api/runs/a/b``, ``PUT /api/runs``)
# fails before any blueprint is chosen, and its answer must be JSON under /api/ too.
_MESSAGES = {404: "not found", 405: "method not allowed", 413: "request body too large"}


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
@bp.app_errorhandler(413)
def http_error(exc):
    if not request.path.startswith(bp.url_prefix + "/"):
        return exc   # the page's own routes keep Werkzeug's answer
    return _error(exc.code, _MESSAGES[exc.code])


@bp.get("/lessons")
def list_lessons():
    return jsonify(_dash().lessons())


@bp.get("/system")
def system():
    from mpdash.web import security
    info = {**_dash().system(), "role": security.role()}
    if security.may_control() and security.viewer_url():
        info["viewer_url"] = security.viewer_url()
    return jsonify(info)


@bp.post("/runs")
def start_run():
    # No force=True: a body that is not declared application/json was refused before this
    # (web/origin.py); a "simple" text/plain request from another site must never start a run.
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object: {\"lesson\": id, \"params\": {...}}")
    unknown = set(body) - {"lesson", "params", "python"}
    if unknown:
        return _error(400, f"unknown field {sorted(map(str, unknown))[0][:64]!r}")
    if "lesson" not in body:
        return _error(400, "field 'lesson' is required")
    return _start(body.get("lesson"), body.get("params"), body.get("python"))


def _start(lesson, params, python=None):
    try:
        run = _dash().start_lesson(lesson, params, python)
    except ParamError as exc:
        return _error(400, str(exc))
    except LimitError as exc:
        return _error(429, str(exc))
    except EngineBusy as exc:
        return _error(503, str(exc))
    return jsonify(_dash().hub.snapshot(run)), 201


@bp.get("/runs")
def list_runs():
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        return _error(400, "'limit' must be a whole number")
    if not 1 <= limit <= 1000:
        return _error(400, "'limit' must be between 1 and 1000")
    before = request.args.get("before")
    return jsonify(_dash().hub.summaries(limit=limit, before=before))


@bp.get("/runs/<run_id>")
def get_run(run_id):
    run = _run_or_404(run_id)
    try:
        since = int(request.args.get("since", 0))
    except ValueError:
        return _error(400, "'since' must be a whole number")
    return jsonify(_dash().hub.snapshot(run, since=since))


@bp.post("/runs/<run_id>/stop")
def stop_run(run_id):
    run = _run_or_404(run_id)
    try:
        _dash().engine.stop(run.id)
    except EngineBusy as exc:
        return _error(503, str(exc))
    return jsonify(_dash().hub.snapshot(run))


@bp.post("/runs/<run_id>/stacks")
def run_stacks(run_id):
    """Every thread's stack in every process of a live run, now (mpdash/stacks.py)."""
    from mpdash.stacks import RunEnded, StacksBusy
    run = _run_or_404(run_id)
    try:
        return jsonify(_dash().stacks.take(run.id))
    except RunEnded as exc:
        return _error(409, str(exc))
    except StacksBusy as exc:
        return _error(503, str(exc))
    except KeyError:   # deleted meanwhile
        return _error(404, f"no run {run_id[:40]!r}")


@bp.get("/runs/<run_id>/metrics.csv")
def run_metrics_csv(run_id):
    run = _run_or_404(run_id)
    data = _dash().hub.snapshot(run)
    return Response(export.metrics_csv(data), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="mpdash-{run.id}-metrics.csv"'})


@bp.get("/runs/<run_id>/trace.json")
def run_trace(run_id):
    run = _run_or_404(run_id)
    data = _dash().hub.snapshot(run)
    body = json.dumps(export.chrome_trace(data), separators=(",", ":"), default=repr)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="mpdash-{run.id}-trace.json"'})


@bp.delete("/runs/<run_id>")
def delete_run(run_id):
    run = _run_or_404(run_id)
    if run.live:
        return _error(409, "the run is still live: stop it first")
    _dash().hub.remove(run.id)   # the store, if any, hears run_deleted and deletes it too
    return "", 204
