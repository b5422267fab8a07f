"""``python -m mpdash watch``: the tutorial's examples, as plain unmodified scripts, watched.

The scripts are in tests/scripts/. Each is watched by a real ``watch --exit --json`` subprocess
(all at once, once per module); the start-method matrix goes through ``Engine.start_command``
in-process, which is what ``watch`` calls.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from mpdash import export
from mpdash.dashboard import Dashboard
from mpdash.runs import PROJECT_ROOT
from mpdash.state import Limits
from mpdash.store import Store
from tests.leaks import assert_none_left, run_processes
from tests.conftest import check_csv, check_trace

SCRIPTS = os.path.join(PROJECT_ROOT, "tests", "scripts")
EXAMPLES = ("process_target", "process_subclass", "queue_square", "pipe_send", "shared_memory",
            "pool_map", "daemon", "pool_executor")


def _watch_cmd(data_dir, *args, options=("--exit", "--json")) -> list[str]:
    return [sys.executable, "-m", "mpdash", "watch", "--port", "0", *options,
            "--data", str(data_dir), "--", *args]


def _finish(proc: subprocess.Popen, stdin: bytes | None = None, timeout: float = 60):
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_none_left(proc.pid)
    return proc.returncode, out.decode(), err.decode()


class Watched:
    """Every example watched once, in parallel (``watch --exit --json`` subprocesses started
    together, once per module: the slow part). Never raises while collecting: what went wrong
    with one example is kept with it and fails only the tests that ask for that example."""

    def __init__(self, data):
        self.data = data
        self._results: dict[str, tuple] = {}
        self._problems: dict[str, str] = {}

    def collect(self, procs: dict) -> None:
        for name, proc in procs.items():
            try:
                code, out, err = _finish(proc)
                self._results[name] = (code, json.loads(out) if out.strip() else None, err)
            except Exception as exc:   # kept for that example's tests
                self._problems[name] = f"{type(exc).__name__}: {exc}"

    def __getitem__(self, name):
        if name in self._problems:
            pytest.fail(f"watching {name}.py went wrong: {self._problems[name]}")
        code, run, err = self._results[name]
        assert run is not None, f"no run object from watching {name}.py (exit {code}): {err[-2000:]}"
        return code, run, err


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    data = tmp_path_factory.mktemp("watch-data")
    procs = {name: subprocess.Popen(_watch_cmd(data, sys.executable,
                                               os.path.join(SCRIPTS, f"{name}.py")),
                                    cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name in EXAMPLES}
    result = Watched(data)
    result.collect(procs)
    return result


def _by_role(run):
    main = [p for p in run["processes"] if p["role"] == "main"]
    assert len(main) == 1
    workers = [p for p in run["processes"] if p["role"] == "worker"]
    return main[0], workers


def _lines(run, pid=None):
    return [l["text"] for l in run["output"] if pid is None or l["pid"] == pid]


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_is_watched_as_a_finished_run(watched, name):
    code, run, err = watched[name]
    assert code == 0, err
    assert run["state"] == "finished" and run["kind"] == "watch" and run["error"] is None
    assert run["command"][-1].endswith(f"{name}.py") and run["title"].endswith(f"{name}.py")
    assert run["time_limit"] is None
    main, workers = _by_role(run)
    assert main["exitcode"] == 0 and main["end"] == "exit"
    assert all(w["ppid"] == main["pid"] and w["start_method"] == "fork" for w in workers)
    assert all(l["stream"] == "out" for l in run["output"])
    assert f"ended: finished, exit status 0" in err
    check_trace(export.chrome_trace(run), run)
    check_csv(export.metrics_csv(run), run)


def test_process_examples_label_each_line_with_its_process(watched):
    for name, text in (("process_target", "Number: {i}"), ("process_subclass", "Process {name}: {i}")):
        _, run, _ = watched[name]
        main, workers = _by_role(run)
        assert len(workers) == 2 and _lines(run, main["pid"]) == []
        for w in workers:
            assert w["exitcode"] == 0 and w["end"] == "exit" and not w["daemon"]
            assert _lines(run, w["pid"]) == [text.format(i=i, name=w["name"]) for i in range(1, 6)]
    assert {w["name"] for w in _by_role(watched["process_subclass"][1])[1]} == {"MyProcess-1", "MyProcess-2"}


def test_ipc_examples_print_the_tutorials_results_from_the_main(watched):
    for name, expected in (("queue_square", ["25"]), ("pipe_send", ["[1, 2, 3]"]),
                           ("shared_memory", ["15", "[2, 3, 4]"])):
        _, run, _ = watched[name]
        main, workers = _by_role(run)
        assert _lines(run, main["pid"]) == expected
        assert [(w["exitcode"], w["end"]) for w in workers] == [(0, "exit")]


def test_pools_run_their_workers_and_end_them(watched):
    _, run, _ = watched["pool_map"]
    main, workers = _by_role(run)
    assert _lines(run) == ["[1, 4, 9, 16, 25]"] and _lines(run, main["pid"]) == _lines(run)
    assert len(workers) == 3 and all(w["daemon"] and w["name"].startswith("ForkPoolWorker")
                                     for w in workers)
    # `with Pool()` terminates its workers: -15 is "terminated", never a crash.
    assert all((w["exitcode"], w["end"]) in ((0, "exit"), (-15, "terminated")) for w in workers)
    _, run, _ = watched["pool_executor"]
    main, workers = _by_role(run)
    assert _lines(run, main["pid"]) == ["[1, 4, 9, 16, 25]"]
    assert len(workers) == 2 and all(w["exitcode"] == 0 for w in workers)


def test_the_daemon_dies_with_its_main_the_other_child_completes(watched):
    _, run, _ = watched["daemon"]
    main, workers = _by_role(run)
    daemon = next(w for w in workers if w["daemon"])
    other = next(w for w in workers if not w["daemon"])
    assert _lines(run, main["pid"]) == ["main done"]
    assert _lines(run, other["pid"]) == [f"Number: {i}" for i in range(1, 6)]
    assert (other["exitcode"], other["end"]) == (0, "exit")
    # multiprocessing's exit handler terminates the daemon (SIGTERM) before it prints all five.
    assert daemon["exitcode"] == -15 and daemon["end"] != "exit"
    assert daemon["end"] == "terminated"   # tracing reports the exit hook's terminate(): not a crash
    assert len(_lines(run, daemon["pid"])) < 5
    assert daemon["ended_at"] <= other["ended_at"]


def test_watched_runs_are_in_the_history(watched):
    runs, _ = Store(str(watched.data)).load()
    assert sorted(r.command[-1].rsplit("/", 1)[-1] for r in runs) == sorted(f"{n}.py" for n in EXAMPLES)
    assert all(r.kind == "watch" and r.state == "finished" and r.frames for r in runs)


# ---------------------------------------------------------------- traced events (mpdash.inrun)

def _events(run, kind):
    return [e for e in run["events"] if e["kind"] == kind]


def test_queue_and_pipe_messages_are_traced(watched):
    for name, send, recv in (("queue_square", "queue_put", "queue_get"),
                             ("pipe_send", "pipe_send", "pipe_recv")):
        _, run, _ = watched[name]
        main, (worker,) = _by_role(run)
        sent, got = _events(run, send), _events(run, recv)
        assert [e["pid"] for e in sent] == [worker["pid"]], name
        assert [e["pid"] for e in got] == [main["pid"]], name
        assert sent[0]["msg"] == got[0]["msg"] and sent[0]["channel"] == got[0]["channel"]
        trace = export.chrome_trace(run)["traceEvents"]
        assert [e["pid"] for e in trace if e["ph"] == "s"] == [worker["pid"]]


def test_shared_writes_are_traced(watched):
    _, run, _ = watched["shared_memory"]
    _, (worker,) = _by_role(run)
    writes = _events(run, "shared_write")
    assert len(writes) >= 4 and {e["pid"] for e in writes} == {worker["pid"]}


@pytest.mark.parametrize("name", ["pool_map", "pool_executor"])
def test_pool_tasks_are_traced_per_worker(watched, name):
    _, run, _ = watched[name]
    _, workers = _by_role(run)
    starts, ends = _events(run, "task_start"), _events(run, "task_end")
    assert starts and len(starts) == len(ends)
    assert {e["pid"] for e in starts} <= {w["pid"] for w in workers}
    assert sorted(e["msg"] for e in starts) == sorted(e["msg"] for e in ends)
    spans = [e for e in export.chrome_trace(run)["traceEvents"] if e.get("cat") == "task"]
    assert len(spans) == len(starts)


# ---------------------------------------------------------------- start methods, python -m

@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_every_start_method_is_watched_unmodified(dashboard, method):
    launcher = os.path.join(SCRIPTS, "_start_method.py")
    for name in ("process_target", "queue_square", "pool_map", "daemon"):
        run = dashboard.engine.start_command(
            [sys.executable, launcher, method, os.path.join(SCRIPTS, f"{name}.py")])
        dashboard.engine.wait(run.id, timeout=60)
        data = dashboard.hub.snapshot(run)
        assert data["state"] == "finished", (name, data["error"], _lines(data))
        main, workers = _by_role(data)
        assert workers and all(w["start_method"] == method for w in workers), name
        helpers = {p["name"] for p in data["processes"] if p["role"] == "helper"}
        assert "resource_tracker" in helpers and (method == "spawn") == ("forkserver" not in helpers)
        if name == "process_target":
            for w in workers:
                assert _lines(data, w["pid"]) == [f"Number: {i}" for i in range(1, 6)]
        elif name == "queue_square":
            assert _lines(data, main["pid"]) == ["25"]
        elif name == "pool_map":
            assert _lines(data, main["pid"]) == ["[1, 4, 9, 16, 25]"]


def test_python_dash_m_package(dashboard):
    run = dashboard.engine.start_command([sys.executable, "-m", "tutorial_pkg"], cwd=SCRIPTS)
    dashboard.engine.wait(run.id, timeout=60)
    data = dashboard.hub.snapshot(run)
    assert data["state"] == "finished", data["error"]
    main, workers = _by_role(data)
    assert _lines(data, main["pid"]) == ["[1, 4, 9, 16, 25]"]
    assert len(workers) == 2 and all(w["start_method"] == "spawn" for w in workers)


# ---------------------------------------------------------------- the command itself

def test_exit_status_stdin_and_echo(tmp_path):
    script = "import sys; text = sys.stdin.read(); print(text.strip().upper()); sys.exit(3)"
    proc = subprocess.Popen(_watch_cmd(tmp_path, sys.executable, "-c", script),
                            cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    code, out, err = _finish(proc, b"hello from stdin\n")
    assert code == 3
    run = json.loads(out)   # --json: stdout is the run object only
    assert run["state"] == "failed" and "code 3" in run["error"]
    assert _lines(run) == ["HELLO FROM STDIN"]
    assert "HELLO FROM STDIN\n" in err   # echoed, to stderr under --json
    # Without --json the program's stdout is echoed to ours.
    proc = subprocess.Popen(_watch_cmd(tmp_path, sys.executable, "-c", "print('plain')",
                                       options=("--exit",)),
                            cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    code, out, err = _finish(proc)
    assert code == 0 and out == "plain\n" and "watching" in err


def test_bad_commands_exit_2(tmp_path):
    for args, message in ((["no-such-program-xyz"], "program not found"), ([], "no command"),
                          ([os.path.join(SCRIPTS, "daemon.py")], "is not executable")):
        proc = subprocess.Popen(_watch_cmd(tmp_path, *args), cwd=PROJECT_ROOT,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        code, out, err = _finish(proc)
        assert code == 2 and message in err and out == "", (args, err)
    (tmp_path / "a-file").write_text("")
    proc = subprocess.Popen(_watch_cmd(tmp_path / "a-file" / "data", sys.executable, "-c", "1"),
                            cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    code, out, err = _finish(proc)
    assert code == 2 and "cannot keep run history" in err and "--data" in err


def test_timeout_stops_the_program(tmp_path):
    proc = subprocess.Popen(_watch_cmd(tmp_path, sys.executable, "-c", "import time; time.sleep(60)",
                                       options=("--exit", "--json", "--timeout", "0.5")),
                            cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    code, out, err = _finish(proc, timeout=30)
    run = json.loads(out)
    assert run["state"] == "stopped" and run["error"].startswith("time limit")
    assert run["time_limit"] == 0.5 and run["duration"] < 10
    main = next(p for p in run["processes"] if p["role"] == "main")
    # The exit status is the main's, as a shell reports it: signal N -> 128 + N, exactly.
    assert main["exitcode"] < 0 and code == 128 - main["exitcode"], (code, main)
    assert "the run was stopped: time limit" in err


def test_a_fork_bomb_is_stopped_by_the_process_limit(tmp_path):
    """``--max-procs 8``: a program's limit is its own (the default, max(256, 8 x cores), is
    tests/test_watch_limits.py's Pool(70), not killed)."""
    script = ("import time\nfrom multiprocessing import Process\n"
              "if __name__ == '__main__':\n"
              "    for _ in range(1000):\n"
              "        Process(target=time.sleep, args=(60,)).start()\n")
    proc = subprocess.Popen(_watch_cmd(tmp_path, sys.executable, "-c", script,
                                       options=("--exit", "--json", "--max-procs", "8")),
                            cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    code, out, err = _finish(proc, timeout=60)
    run = json.loads(out)
    assert run["state"] == "stopped" and run["error"].startswith("process limit")
    assert run["process_limit"] == 8 and 8 < len(run["processes"]) < 1000
    assert all(p["ended_at"] is not None for p in run["processes"])
    assert code != 0 and "the run was stopped: process limit: more than 8 live processes" in err
    assert "--max-procs" in run["error"]


def test_process_limit_in_process(tmp_path):
    """The same through the engine, with a small limit: nothing left once stopped."""
    script = ("import os, time\n"
              "for _ in range(50):\n"
              "    if os.fork() == 0:\n"
              "        time.sleep(60); os._exit(0)\n"
              "time.sleep(60)\n")
    with Dashboard() as dash:
        run = dash.engine.start_command([sys.executable, "-c", script], max_procs=8)
        dash.engine.wait(run.id, timeout=30)
        assert run.state == "stopped" and "process limit: more than 8" in run.error
        assert len(run.processes) < 50
        assert all(p["end"] == "killed" for p in run.processes.values()), run.processes
    assert_none_left(dash)


def _read_until(stream, needle: str, timeout: float = 20) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        assert time.monotonic() < deadline, f"never saw {needle!r} in {seen!r}"
        line = stream.readline().decode()
        assert line, f"stream ended before {needle!r}: {seen!r}"
        seen += line
    return seen


def test_ctrl_c_reaches_the_program_and_serving_goes_on_without_exit(tmp_path):
    script = "import time\nprint('ready', flush=True)\ntime.sleep(60)\n"
    proc = subprocess.Popen(_watch_cmd(tmp_path, sys.executable, "-c", script, options=()),
                            cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        banner = _read_until(proc.stderr, "Ctrl-C to stop")
        url = banner.split(" — ")[1].split()[0]
        assert _read_until(proc.stdout, "ready") == "ready\n"
        proc.send_signal(signal.SIGINT)      # what the terminal sends us; we pass it on
        ended = _read_until(proc.stderr, "still serving")
        assert "ended: failed, exit status 130" in ended   # KeyboardInterrupt in the program
        with urllib.request.urlopen(f"{url}/api/runs", timeout=10) as answer:
            (summary,) = json.load(answer)
        assert summary["state"] == "failed" and summary["kind"] == "watch"
        with urllib.request.urlopen(f"{url}/api/runs/{summary['id']}/trace.json", timeout=10) as answer:
            assert answer.status == 200
        proc.send_signal(signal.SIGINT)      # now it ends the server
        assert proc.wait(timeout=10) == 130
    finally:
        _finish(proc)


def test_terminal_input_is_relayed_to_the_program(tmp_path):
    """A terminal's input is read by mpdash and relayed (the program is not in the terminal's
    foreground group, so it must not read the terminal itself)."""
    import pty
    master, slave = pty.openpty()
    script = "import sys; print('got', sys.stdin.readline().strip(), sys.stdin.isatty())"
    proc = subprocess.Popen(_watch_cmd(tmp_path, sys.executable, "-c", script), cwd=PROJECT_ROOT,
                            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        os.write(master, b"typed line\n")
        code, out, err = _finish(proc, timeout=30)
    finally:
        os.close(master)
    assert code == 0, err
    assert _lines(json.loads(out)) == ["got typed line False"]


def test_a_busy_port_is_named_and_nothing_starts(tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        marker = tmp_path / "ran"
        cmd = [sys.executable, "-m", "mpdash", "watch", "--port", str(port), "--exit",
               "--data", str(tmp_path / "data"), "--",
               sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
        done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"port {port}" in done.stderr and "--port" in done.stderr
    assert "Werkzeug" not in done.stderr and "Either identify" not in done.stderr
    assert not marker.exists()


def test_a_second_ctrl_c_stops_the_run(tmp_path):
    """The first Ctrl-C is the program's (it ignores it here); the second stops the run."""
    # READY is printed only once SIGINT is ignored (the banner, which quotes the script, says
    # "ready" in lower case: waiting for that sent the first Ctrl-C too early).
    script = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
              "print('ready'.upper(), flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen(_watch_cmd(tmp_path, sys.executable, "-c", script),
                            cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        _read_until(proc.stderr, "READY")            # --json: the program's output is on stderr
        proc.send_signal(signal.SIGINT)
        _read_until(proc.stderr, "Ctrl-C again stops it")
        proc.send_signal(signal.SIGINT)
    finally:
        code, out, err = _finish(proc, timeout=30)
    run = json.loads(out)
    assert run["state"] == "stopped" and run["error"] == "stopped from the terminal (Ctrl-C)"
    main = next(p for p in run["processes"] if p["role"] == "main")
    assert main["end"] == "killed" and code == 128 - main["exitcode"], (code, main)


def test_sigterm_to_watch_stops_the_run_and_exits(tmp_path):
    script = "import time\nprint('ready', flush=True)\ntime.sleep(60)\n"
    proc = subprocess.Popen(_watch_cmd(tmp_path, sys.executable, "-c", script, options=()),
                            cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        _read_until(proc.stdout, "ready")
        assert run_processes(proc.pid), "the program is not running"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    finally:
        _finish(proc)      # also proves every process of the run is gone
    assert code == 128 + signal.SIGTERM, code
    runs, _ = Store(str(tmp_path)).load()
    assert [r.state for r in runs] == ["stopped"], [(r.state, r.error) for r in runs]


@pytest.mark.parametrize("option", [["--timeout", "-1"], ["--timeout", "x"], ["--hz", "0"],
                                    ["--hz", "51"], ["--port", "70000"], ["--port", "-1"]])
def test_bad_options_exit_2_and_start_nothing(tmp_path, option):
    marker = tmp_path / "ran"
    done = subprocess.run(_watch_cmd(tmp_path / "data", sys.executable, "-c",
                                     f"open({str(marker)!r}, 'w')", options=("--exit", *option)),
                          cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, (option, done.returncode, done.stderr[-1000:])
    assert option[0] in done.stderr and done.stdout == "", (option, done.stderr[-1000:])
    assert not marker.exists()
