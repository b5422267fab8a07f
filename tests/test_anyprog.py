"""Point it at any real program (issue 12, part A), each promise with a real program watched by
a real ``watch --exit --json`` (scripts in tests/scripts/anyprog/):

- from the program's own folder, with each CPython 3.10-3.14 found (absent ones skipped): the
  program imports a module of its folder, in its main and in spawned workers, and its path
  holds nothing of the server's but mpdash/_boot;
- children that are not multiprocessing's are ``child`` rows named by their command, with the
  exit code their reaper saw, and ``end: "unknown"`` where no process of the run could know it;
- joblib/loky tasks, Manager proxy calls, shared_memory blocks and SimpleQueue messages are
  traced; a program that imports none of them imports none of them under mpdash either;
- lessons run on another interpreter (``mpdash run --python``, ``POST /api/runs`` with an id of
  ``GET /api/system``'s ``pythons``), and the Run says which, with or without a GIL.

The server is started without PYTHONPATH (mpdash found by a ``sys.path`` insert of its own), as
an installed ``mpdash`` is: a PYTHONPATH naming the checkout would reach the program and hide
what is tested here.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time

import pytest

from mpdash import pythons
from mpdash.runs import BOOT_DIR, PROJECT_ROOT
from tests.conftest import finish
from tests.leaks import assert_none_left

SCRIPTS = os.path.join(PROJECT_ROOT, "tests", "scripts", "anyprog")
SERVER = ("import sys; sys.path.insert(0, {root!r}); from mpdash.cli import main; "
          "sys.exit(main(sys.argv[1:]))").format(root=PROJECT_ROOT)


def _interpreters() -> dict:
    """{"3.X": path}: the server's own, then one per other version found."""
    found = {}
    for info in pythons.Pythons().list():
        found.setdefault(".".join(info["version"].split(".")[:2]), info["executable"])
    return found


FOUND = _interpreters()
OTHER = next((p for v, p in FOUND.items() if v != "%d.%d" % sys.version_info[:2]), None)


def _env() -> dict:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("MPDASH_") and k != "PYTHONPATH"}


def _mpdash(*args, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SERVER, *args], cwd=cwd, env=_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _watch(data, command, cwd) -> subprocess.Popen:
    return _mpdash("watch", "--port", "0", "--exit", "--json", "--data", str(data), "--",
                   *command, cwd=cwd)


def _finish(proc: subprocess.Popen, timeout: float = 120):
    out, err = finish(proc, timeout)
    assert_none_left(proc.pid)
    return proc.returncode, json.loads(out) if out.strip() else None, err.decode()


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """Every program watched once, all at once: name -> (exit status, run, stderr)."""
    data = tmp_path_factory.mktemp("anyprog-data")
    procs = {}
    for version, python in FOUND.items():
        folder = tmp_path_factory.mktemp(f"own-folder-{version}")
        for name in ("prog.py", "helper_mod.py"):
            shutil.copy(os.path.join(SCRIPTS, "own_folder", name), folder / name)
        procs[f"own-{version}"] = _watch(data, [python, "prog.py"], cwd=str(folder))
    here = str(tmp_path_factory.mktemp("elsewhere"))
    for version, python in FOUND.items():   # os.wait*/subprocess differ between versions
        procs[f"children-{version}"] = _watch(
            data, [python, os.path.join(SCRIPTS, "children.py")], cwd=here)
    for name in ("libraries", "plain"):   # joblib is installed for the server's Python only
        procs[name] = _watch(data, [sys.executable, os.path.join(SCRIPTS, f"{name}.py")],
                             cwd=here)
    return {name: _finish(proc) for name, proc in procs.items()}


def _main_line(run) -> dict:
    main = next(p["pid"] for p in run["processes"] if p["role"] == "main")
    lines = [l["text"] for l in run["output"] if l["pid"] == main and l["text"].startswith("{")]
    assert len(lines) == 1, run["output"]
    return json.loads(lines[0])


# ------------------------------------------------------------------ any folder, any interpreter

def test_every_supported_interpreter_found_is_tested():
    assert "%d.%d" % sys.version_info[:2] in FOUND
    assert all(v in ("3.10", "3.11", "3.12", "3.13", "3.14") for v in FOUND)


@pytest.mark.parametrize("version", sorted(FOUND))
def test_a_program_runs_from_its_own_folder_with_its_own_interpreter(watched, version):
    code, run, err = watched[f"own-{version}"]
    assert code == 0, err
    assert run["state"] == "finished", run["error"]
    seen = _main_line(run)
    assert seen["version"] == [int(n) for n in version.split(".")]
    assert seen["value"] == 7 and seen["tripled"] == [0, 3, 6, 9]   # its folder, main and workers
    # Nothing of the server's on the program's path but the boot folder: not the checkout, not
    # the server's site-packages (which would shadow the program's own packages).
    server_site = sysconfig.get_paths()["purelib"]
    path = [os.path.realpath(p) for p in seen["path"] if p]
    assert os.path.realpath(BOOT_DIR) in path
    assert os.path.realpath(PROJECT_ROOT) not in path
    assert os.path.realpath(server_site) not in path or version == "%d.%d" % sys.version_info[:2]
    assert seen["mpdash"].startswith(os.path.join(PROJECT_ROOT, "mpdash"))   # loaded, not found
    # The Run says which interpreter ran it, in the main's own words.
    assert run["python"]["version"].startswith(version + ".")
    assert run["python"]["executable"] == seen["executable"]
    assert run["python"]["gil_enabled"] in (True, False)
    assert run["python"]["default_start_method"] in ("fork", "spawn", "forkserver")
    workers = [p for p in run["processes"] if p["role"] == "worker"]
    assert len(workers) == 2 and all(p["start_method"] == "spawn" for p in workers)
    ran = {e["pid"] for e in run["events"] if e["kind"] == "task_end"}
    assert ran and ran <= {p["pid"] for p in workers}
    # The Pool's own SimpleQueues carry its tasks: shown as tasks, never as queue messages.
    assert not [e for e in run["events"] if e["kind"].startswith("queue_")]


def test_the_sitecustomize_the_boot_folder_shadows_still_runs(tmp_path):
    """Debian's python3 (and some venvs) have a sitecustomize of their own: a program watched
    by mpdash must start as it would without it."""
    (tmp_path / "sitecustomize.py").write_text("import os\nos.environ['SHADOWED_RAN'] = '1'\n")
    env = dict(_env(), PYTHONPATH=os.pathsep.join([BOOT_DIR, str(tmp_path)]))
    for python in FOUND.values():
        done = subprocess.run([python, "-c", "import os; print(os.environ.get('SHADOWED_RAN'))"],
                              env=env, capture_output=True, text=True, timeout=60)
        assert (done.stdout, done.stderr) == ("1\n", ""), python


def test_the_server_site_packages_are_not_on_another_interpreters_path(watched):
    """The point of loading mpdash alone: a venv or another version keeps its own packages."""
    others = [v for v in FOUND if v != "%d.%d" % sys.version_info[:2]]
    if not others:
        pytest.skip("no other interpreter on this machine")
    server_site = os.path.realpath(sysconfig.get_paths()["purelib"])
    for version in others:
        seen = _main_line(watched[f"own-{version}"][1])
        assert server_site not in [os.path.realpath(p) for p in seen["path"] if p]


# ------------------------------------------------------------------ every process named

@pytest.mark.parametrize("version", sorted(FOUND))
def test_children_that_are_not_multiprocessings_are_named_with_their_ends(watched, version):
    code, run, err = watched[f"children-{version}"]
    assert code == 0, err
    assert run["state"] == "finished", run["error"]
    main = next(p for p in run["processes"] if p["role"] == "main")
    children = [p for p in run["processes"] if p["role"] == "child"]
    by_name = {}
    for p in children:
        by_name.setdefault(p["name"], []).append(p)
    # subprocess.run(["sleep", "0.6"]): named by its command, its code from subprocess's reap
    (sleep,) = [p for p in by_name["sleep 0.6"] if p["ppid"] == main["pid"]]
    assert (sleep["exitcode"], sleep["end"]) == (0, "exit")
    # raw forks: their parent's command; codes from os.waitpid (3) and os.wait (SIGTERM)
    forks = sorted((p for p in children if p["name"].endswith("children.py")),
                   key=lambda p: p["started_at"])
    assert [(p["exitcode"], p["end"]) for p in forks] == [(3, "crash"), (-15, "crash")]
    assert all(p["ppid"] == main["pid"] and p["start_method"] is None for p in forks)
    # sh -c '...': reaped by subprocess (5); the sleep it started was reaped by sh, which tells
    # no one: its end is "unknown", never a silent null
    (sh,) = by_name["sh -c 'sleep 1.2; exit 5'"]
    assert (sh["exitcode"], sh["end"]) == (5, "crash")
    (grandchild,) = [p for p in children if p["ppid"] == sh["pid"]]
    assert grandchild["name"] == "sleep 1.2"   # renamed by a scan after sh's copy exec'd
    assert (grandchild["exitcode"], grandchild["end"]) == (None, "unknown")
    assert all(p["end"] is not None for p in run["processes"])
    assert not [p for p in run["processes"] if p["role"] == "worker"]


# ------------------------------------------------------------------ the libraries people use

def test_joblib_manager_shared_memory_and_simple_queue_are_traced(watched):
    code, run, err = watched["libraries"]
    assert code == 0, err
    assert run["state"] == "finished", run["error"]
    procs = {p["pid"]: p for p in run["processes"]}
    main = next(p["pid"] for p in procs.values() if p["role"] == "main")
    events = run["events"]

    def of(kind):
        return [e for e in events if e["kind"] == kind]

    # joblib.Parallel on loky: 8 tasks, each started and ended on a loky worker that ran it
    starts, ends = of("task_start"), of("task_end")
    assert sum(e["items"] for e in starts) == 8 and sum(e["items"] for e in ends) == 8
    loky = {pid for pid, p in procs.items() if (p["name"] or "").startswith("LokyProcess")}
    assert len(loky) == 2 and all(procs[pid]["role"] == "worker" for pid in loky)
    assert {e["pid"] for e in starts} <= loky and all(e["channel"] == "Loky-1" for e in starts)
    assert {e["msg"] for e in starts} == {e["msg"] for e in ends}
    assert all(e["detail"].startswith("square") for e in starts)
    # Manager proxies: the child's writes and the main's reads, one channel per referent
    calls = of("manager_call")
    child_calls = {(e["detail"], e["args"]) for e in calls if e["pid"] != main}
    assert ("__setitem__", "'answer', 42") in child_calls and ("append", "'from child'") in child_calls
    dict_channel = next(e["channel"] for e in calls if e["detail"] == "__setitem__")
    assert dict_channel.startswith("dict-")
    assert any(e["pid"] == main and e["channel"] == dict_channel for e in calls)
    assert all(isinstance(e["seconds"], float) and e["seconds"] >= 0 for e in calls)
    # shared_memory: created by the main, attached by a child, unlinked by the main
    (create,), (attach,), (unlink,) = of("shm_create"), of("shm_attach"), of("shm_unlink")
    assert create["pid"] == main == unlink["pid"] and attach["pid"] != main
    assert create["name"] == attach["name"] == unlink["name"] == create["channel"]
    assert create["size"] == attach["size"] == 4096
    # SimpleQueue: 3 puts by a child, each paired with the main's get
    puts, gets = of("queue_put"), of("queue_get")
    assert len(puts) == len(gets) == 3
    assert {e["channel"] for e in puts + gets} == {"SimpleQueue-1"}
    assert {e["msg"] for e in puts} == {e["msg"] for e in gets}
    assert all(e["pid"] != main for e in puts) and all(e["pid"] == main for e in gets)


def test_a_program_that_uses_no_traced_library_imports_none(watched):
    code, run, err = watched["plain"]
    assert code == 0, err
    assert _main_line_list(run) == []


def _main_line_list(run):
    main = next(p["pid"] for p in run["processes"] if p["role"] == "main")
    (line,) = [l["text"] for l in run["output"] if l["pid"] == main]
    return json.loads(line)


# ------------------------------------------------------------------ lessons on another Python

@pytest.mark.skipif(OTHER is None, reason="no other interpreter on this machine")
def test_a_lesson_runs_on_the_interpreter_given_to_run(tmp_path):
    proc = _mpdash("run", "threads-vs-processes", "--param", "workers=2", "--param",
                   "work=200000", "--python", OTHER, "--json", cwd=str(tmp_path))
    code, run, err = _finish(proc)
    assert code == 0, err
    assert run["python"]["executable"] == OTHER
    info = next(f for f in run["findings"] if f["key"] == "gil_enabled")
    version, gil = run["python"]["version"], run["python"]["gil_enabled"]
    assert info["value"] is gil
    assert f"CPython {version}" in info["text"]
    assert ("with a GIL" in info["text"]) == gil


def test_run_refuses_a_python_that_is_not_a_supported_cpython(tmp_path):
    proc = _mpdash("run", "process-target", "--python", "/bin/true", cwd=str(tmp_path))
    code, run, err = _finish(proc, timeout=60)
    assert code == 2 and "--python" in err and run is None


def test_the_api_lists_interpreters_and_starts_a_lesson_on_one_by_id(client, dashboard):
    listed = client.get("/api/system").get_json()["pythons"]
    assert listed[0] == {"id": "server", "version": sys.version.split()[0],
                         "executable": sys.executable}
    assert len({p["id"] for p in listed}) == len(listed)
    assert all(set(p) == {"id", "version", "executable"} for p in listed)
    # Never a path from HTTP, even one of the list; an unknown id is a 400 that says so.
    for bad in ("nope", listed[-1]["executable"], 3):
        answer = client.post("/api/runs", json={"lesson": "process-target", "python": bad})
        assert answer.status_code == 400 and "python" in answer.get_json()["error"]
    chosen = listed[-1]
    answer = client.post("/api/runs", json={"lesson": "process-target", "python": chosen["id"]})
    assert answer.status_code == 201, answer.get_json()
    run = dashboard.engine.wait(answer.get_json()["id"], timeout=60)
    data = dashboard.hub.snapshot(run)
    assert data["state"] == "finished", data["error"]
    assert data["python"]["version"] == chosen["version"]
    assert os.path.realpath(data["python"]["executable"]) == os.path.realpath(chosen["executable"])
    # null is "not given" (docs/API.md), as for params: the server's own interpreter.
    answer = client.post("/api/runs", json={"lesson": "process-target", "python": None})
    assert answer.status_code == 201, answer.get_json()
    run = dashboard.engine.wait(answer.get_json()["id"], timeout=60)
    assert dashboard.hub.snapshot(run)["python"]["version"] == listed[0]["version"]


@pytest.mark.skipif(OTHER is None, reason="no other interpreter on this machine")
def test_the_runs_interpreter_is_kept_in_the_history(tmp_path):
    from mpdash.dashboard import Dashboard
    other_id = next(p["id"] for p in pythons.Pythons().list() if p["executable"] == OTHER)
    with Dashboard(data_dir=str(tmp_path)) as first:
        run = first.start_lesson("process-target", None, other_id)
        first.engine.wait(run.id, timeout=60)
        kept = first.hub.snapshot(run)["python"]
    assert_none_left(first)
    assert kept["executable"] == OTHER
    with Dashboard(data_dir=str(tmp_path)) as dash:
        assert dash.hub.get(run.id).python == kept
    assert_none_left(dash)


@pytest.mark.skipif(OTHER is None, reason="no other interpreter on this machine")
def test_serve_offers_the_interpreter_given_with_python(tmp_path):
    """``serve --python PATH``: a venv's python joins ``pythons`` (its own entry, although it
    links to a base interpreter found anyway: it has its own packages), and runs a lesson."""
    import re
    import urllib.request
    subprocess.run([OTHER, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True,
                   timeout=120, env=_env())
    venv_python = str(tmp_path / "venv" / "bin" / "python")
    proc = _mpdash("serve", "--port", "0", "--data", str(tmp_path / "data"), "--python",
                   venv_python, cwd=str(tmp_path))
    try:
        line = proc.stdout.readline().decode()
        url = re.search(r"http://\S+?/", line).group(0)
        with urllib.request.urlopen(url + "api/system", timeout=30) as answer:
            listed = json.load(answer)["pythons"]
        (venv,) = [p for p in listed if p["executable"] == venv_python]
        assert listed.index(venv) == 1   # right after the server's own
        body = json.dumps({"lesson": "process-target", "python": venv["id"]}).encode()
        request = urllib.request.Request(url + "api/runs", body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            run_id = json.load(answer)["id"]
        for _ in range(300):
            with urllib.request.urlopen(f"{url}api/runs/{run_id}", timeout=30) as answer:
                run = json.load(answer)
            if run["state"] not in ("starting", "running"):
                break
            time.sleep(0.1)
        assert run["state"] == "finished", run["error"]
        assert run["python"]["executable"] == venv_python
    finally:
        proc.send_signal(signal.SIGINT)
        _finish(proc, timeout=30)


def test_serve_refuses_a_python_that_is_not_a_supported_cpython(tmp_path):
    proc = _mpdash("serve", "--port", "0", "--python", "/bin/true", cwd=str(tmp_path))
    code, _, err = _finish(proc, timeout=60)
    assert code == 2 and "argument --python" in err
