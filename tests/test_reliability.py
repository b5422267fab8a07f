"""Nothing outlives its run; limits hold whatever the program does; the server does not leak.

Most tests run twice: with a cgroup per run (where this machine allows it) and with the
process-group fallback, forced by ``Dashboard(cgroups=False)``.
"""
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from mpdash import protocol
from mpdash.dashboard import Dashboard
from mpdash.runs import BOOT_DIR, PROJECT_ROOT, LimitError
from mpdash.state import Limits
from tests.conftest import wait_until
from tests.leaks import alive, assert_none_left, marked_processes, run_processes, zombie_children

PROGRAMS = os.path.join(os.path.dirname(__file__), "programs")
APP = os.path.join(PROJECT_ROOT, "app.py")



def program(name, *args):
    return [sys.executable, os.path.join(PROGRAMS, name), *map(str, args)]


def gone_within(pids, timeout):
    """Seconds until every pid is gone (dead or a zombie), or None if some outlived timeout."""
    t0 = time.monotonic()
    if wait_until(lambda: not any(alive(p) for p in pids), timeout=timeout, step=0.005):
        return time.monotonic() - t0
    return None


@pytest.fixture(params=["cgroup", "pgroup"])
def make_dash(request):
    made = []

    def make(**limits):
        dash = Dashboard(Limits(**limits), cgroups=request.param == "cgroup")
        if request.param == "cgroup" and not dash.engine.cgroups.enabled:
            dash.close()
            pytest.skip(f"no writable cgroups here: {dash.engine.cgroups.reason}")
        made.append(dash)
        return dash

    make.mode = request.param
    yield make
    for dash in made:
        dash.close()
    for dash in made:
        assert_none_left(dash)


def live_pids_when(run, n, timeout=20):
    assert wait_until(lambda: len(run.live_pids()) >= n, timeout=timeout), run.processes
    return run.live_pids()


# ------------------------------------------------------------------ every way a run can end

@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_stop_leaves_nothing_within_two_seconds(make_dash, method):
    dash = make_dash()
    run = dash.engine.start_lesson("pool-map", {"spin": 5.0, "items": 12, "workers": 3,
                                                "start_method": method})
    pids = live_pids_when(run, 4)
    t0 = time.monotonic()
    dash.engine.stop(run.id)
    took = time.monotonic() - t0
    assert run.state == "stopped"
    assert took < 2.0 and gone_within(pids, 0.01) is not None
    assert run_processes(dash) == []
    print(f"stop {make_dash.mode} {method}: {took * 1000:.0f} ms to the last process gone")


def test_finished_run_kills_its_leftovers(make_dash):
    dash = make_dash()
    run = dash.engine.start_command(program("orphan_maker.py"))
    orphan = int(wait_until(lambda: next((l["text"].split()[1] for l in list(run.output)
                                        if l["text"].startswith("orphan")), None)))
    dash.engine.wait(run.id, timeout=10)
    main = run.processes[run.main_pid]
    assert run.state == "finished" and main["exitcode"] == 0
    assert run.ended_at - main["ended_at"] < 2.0
    assert not alive(orphan)


def test_an_unreported_child_started_just_before_the_main_returns_ends_with_the_run(
        make_dash, tmp_path):
    # No scan has seen it yet and it does not hold the run's stdout: nothing but the final
    # adoption ties it to the run.
    script = tmp_path / "last_child.py"
    script.write_text("import subprocess\n"
                      "p = subprocess.Popen(['sleep', '30'], stdout=subprocess.DEVNULL,\n"
                      "                     stderr=subprocess.DEVNULL)\n"
                      "print('child', p.pid, flush=True)\n")
    dash = make_dash()
    run = dash.engine.start_command([sys.executable, str(script)])
    dash.engine.wait(run.id, timeout=10)
    child = next(int(l["text"].split()[1]) for l in run.output if l["text"].startswith("child"))
    assert run.state == "finished" and child in run.processes
    assert gone_within([child], 0.5) is not None, "the child outlived its run"


@pytest.mark.parametrize("setsid", [False, True], ids=["orphan", "setsid-orphan"])
def test_orphans_are_seen_marked_and_end_with_their_run(make_dash, setsid):
    dash = make_dash()
    procs = []
    dash.hub.subscribe(lambda name, msg: procs.append(dict(msg)) if name == "proc" else None)
    run = dash.engine.start_command(program("orphan_maker.py", *(["setsid"] if setsid else []),
                                            "hold", 30))
    orphan = int(wait_until(lambda: next((l["text"].split()[1] for l in list(run.output)
                                        if l["text"].startswith("orphan")), None)))
    # Its parent is dead: it is the server's child now, found by a scan, and marked.
    assert wait_until(lambda: run.processes.get(orphan, {}).get("orphan"), timeout=5), \
        run.processes.get(orphan)
    assert run.processes[orphan]["ppid"] == os.getpid() and alive(orphan)
    # docs/API.md `proc`: viewers learn it live, from its `start` if it was first seen
    # orphaned, else from an `update` once it is.
    said = [(m["kind"], m["orphan"]) for m in procs if m["pid"] == orphan and m["kind"] != "exit"]
    assert said and said[-1][1] is True, said
    assert said[0] == ("start", True) or ("update", True) in said, said
    dash.engine.stop(run.id)
    assert not alive(orphan) and run.processes[orphan]["ended_at"] is not None


def test_an_orphan_that_dies_between_scans_keeps_its_exit_code(dashboard, tmp_path):
    # The orphan is the server's child: the server reaps it, and must do so where the exit
    # code is recorded (its pidfd), not as a stray zombie whose code nobody keeps.
    script = tmp_path / "short_orphan.py"
    script.write_text(
        "import os, subprocess, time\n"
        "if os.fork() == 0:\n"
        "    p = subprocess.Popen(['sh', '-c', 'sleep 0.1; exit 7'])\n"
        "    print('orphan', p.pid, flush=True)\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "time.sleep(1.5)\n")
    run = dashboard.engine.start_command([sys.executable, str(script)])
    dashboard.engine.wait(run.id, timeout=15)
    orphan = next(int(l["text"].split()[1]) for l in run.output if l["text"].startswith("orphan"))
    assert run.state == "finished", run.error
    proc = run.processes[orphan]
    assert (proc["exitcode"], proc["end"], proc["orphan"]) == (7, "crash", True), proc


def test_crashing_main_takes_its_workers_along(make_dash):
    dash = make_dash()
    run = dash.engine.start_command(program("crash_main.py", "fork"))
    live_pids_when(run, 4)
    dash.engine.wait(run.id, timeout=20)
    main = run.processes[run.main_pid]
    assert run.state == "failed" and main["exitcode"] == -signal.SIGSEGV
    last = max(p["ended_at"] for p in run.processes.values())
    assert last - main["ended_at"] < 2.0
    assert all(p["ended_at"] for p in run.processes.values())
    assert run_processes(dash) == []


def test_time_limit_of_one_second(make_dash):
    dash = make_dash(run_seconds=1.0)
    run = dash.engine.start_lesson("pool-map", {"spin": 5.0, "items": 9})
    pids = live_pids_when(run, 4)
    dash.engine.wait(run.id, timeout=10)
    assert run.state == "stopped" and run.error.startswith("time limit")
    assert run.ended_at - run.started_at < 1.0 + 2.0
    assert gone_within(pids, 0.01) is not None


# ------------------------------------------------------------------ limits

def test_start_over_the_process_limit_is_refused(make_dash):
    dash = make_dash(max_processes=4)
    first = dash.engine.start_lesson("pool-map", {"spin": 3.0, "items": 9, "workers": 3})
    live_pids_when(first, 4)
    with pytest.raises(LimitError, match="4 live processes"):
        dash.engine.start_lesson("process-target", {})
    assert list(dash.hub.runs) == [first.id]
    dash.engine.stop(first.id)


def test_fork_bomb_is_stopped_and_the_server_carries_on(make_dash):
    dash = make_dash()
    # 4 children per process, 5 levels: up to 1364 processes if nothing stopped it.
    run = dash.engine.start_command(program("forkbomb.py", 4, 5), max_procs=64)
    dash.engine.wait(run.id, timeout=20)
    assert run.state == "stopped" and run.error.startswith("process limit"), run.error
    assert_none_left(dash, within=3)
    after = dash.engine.start_lesson("pool-map", {})
    dash.engine.wait(after.id, timeout=20)
    assert after.state == "finished" and after.result == [1, 4, 9, 16, 25]


def test_pids_max_stops_a_fork_bomb_at_the_kernel(make_dash):
    if make_dash.mode != "cgroup":
        pytest.skip("pids.max is the cgroup path; the fallback is the test above")
    # The server's own limit set out of the way: only the kernel stands in the bomb's way.
    dash = make_dash(run_tasks=24, tasks_per_process=0)
    run = dash.engine.start_command(program("forkbomb.py", 4, 4),   # up to 340 otherwise
                                    max_procs=10_000)
    cg = dash.engine.cgroup_of(run.id)
    assert wait_until(lambda: cg.pids_max_hits() > 0, timeout=10), "the kernel refused no fork"
    time.sleep(0.5)
    assert len(cg.pids()) <= 24
    assert len(run.processes) <= 24
    dash.engine.stop(run.id)
    assert any("fork refused" in l["text"] for l in run.output)


def test_memory_ceiling_stops_the_run(make_dash):
    dash = make_dash()
    run = dash.engine.start_command(program("hog.py", 80, 3), max_rss=150 * 2**20)
    dash.engine.wait(run.id, timeout=20)
    assert run.state == "stopped" and run.error.startswith("memory limit"), run.error
    assert "150 MiB" in run.error


def test_system_says_which_isolation_is_in_use(make_dash):
    dash = make_dash()
    mode = dash.system()["cgroups"]
    assert mode == ("off" if make_dash.mode == "pgroup" else dash.engine.cgroups.mode)
    if make_dash.mode == "cgroup":
        assert mode in ("v2", "hybrid")


def test_cgroups_are_removed_after_each_run_and_at_close():
    with Dashboard(cgroups=True) as dash:
        cgroups = dash.engine.cgroups
        if not cgroups.enabled:
            pytest.skip(f"no writable cgroups here: {cgroups.reason}")
        run = dash.engine.start_lesson("pool-map", {})
        cg = dash.engine.cgroup_of(run.id)
        # The main joins its cgroup itself (sh wrapper) before it execs the program.
        assert wait_until(lambda: run.main_pid in cg.pids(), timeout=5)
        dash.engine.wait(run.id, timeout=20)
        assert wait_until(lambda: not any(os.path.exists(d) for d in cg.dirs), timeout=3)
        parents = [p for p in (cgroups.v2_parent, cgroups.pids_parent) if p]
    assert not any(os.path.exists(p) for p in parents)
    assert_none_left(dash)


# ------------------------------------------------------------------ the PDEATHSIG race

def _child_subreaper(on: bool) -> bool:
    """Make this process a child subreaper (or not); returns what it was before."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    was = ctypes.c_int()
    assert libc.prctl(37, ctypes.byref(was), 0, 0, 0) == 0      # PR_GET_CHILD_SUBREAPER
    assert libc.prctl(36, int(on), 0, 0, 0) == 0                 # PR_SET_CHILD_SUBREAPER
    return bool(was.value)


@pytest.fixture(params=[True, False], ids=["subreaper", "no-subreaper"])
def subreaper(request):
    """Both homes an orphan can get: this process as its subreaper (what a server is) or init.
    Set here, not left to whichever Dashboard happened to run earlier in the session."""
    before = _child_subreaper(request.param)
    yield request.param
    _child_subreaper(before)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_children_whose_parent_died_before_their_death_signal_leave(method, tmp_path, subreaper):
    """The main exits the instant start() returns: its children have not run a line yet, so
    PR_SET_PDEATHSIG cannot be set in time; the probe's re-check after prctl must catch it,
    whether the orphans land on a subreaper (the probe must not take it for their parent) or
    on init. No server here (it would clean up anyway): the probe alone must do it."""
    marker = uuid.uuid4().hex
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([BOOT_DIR, PROJECT_ROOT]),
               MPDASH_EVENTS="/nonexistent/mpdash.sock", MPDASH_SERVER_PID=str(os.getpid()),
               MPDASH_RUN_MAIN="1", MPDASH_ENGINE=marker, PYTHONUNBUFFERED="1")
    out_file = tmp_path / "out"
    with open(out_file, "w") as out:   # not a pipe: a survivor would hold it open
        racer = subprocess.Popen(program("racer.py", method, 6), env=env, stdout=out,
                                 stderr=subprocess.DEVNULL, process_group=0)
        racer.wait(timeout=30)
    out = out_file.read_text()
    children = [int(p) for p in out.split()[1:]]
    assert len(children) == 6, out

    def with_marker():
        return marked_processes(f"{protocol.ENV_ENGINE}={marker}")

    left = wait_until(lambda: not with_marker(), timeout=5)
    survivors = with_marker()
    for pid in survivors:   # a failed test must not leave 60 s sleepers behind
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not any(alive(pid) for pid in children), timeout=5)
    codes = {}
    if subreaper:   # they were re-parented to this process: reap them, and read their codes
        for pid in zombie_children(os.getpid(), group=racer.pid):
            _, status = os.waitpid(pid, 0)
            codes[pid] = os.waitstatus_to_exitcode(status)
    assert left, f"children outlived their main: {survivors}"
    if subreaper:
        # docs/API.md: a process whose parent was gone before its PR_SET_PDEATHSIG was armed
        # "exits with code 137 at start"; one that armed it in time gets the signal (-9). The
        # spawn children cannot have armed it (the main exits as start() returns).
        got = [codes.get(pid) for pid in children]
        assert set(got) <= {137, -signal.SIGKILL}, codes
        if method == "spawn":
            assert set(got) == {137}, codes


# ------------------------------------------------------------------ no leaks in the server

def test_fifty_runs_leak_no_fd_thread_or_zombie():
    with Dashboard() as dash:
        def one(i):
            run = dash.engine.start_lesson("process-target", {"processes": 1 + i % 2, "count": 1})
            dash.engine.wait(run.id, timeout=20)
            assert run.state == "finished", run.error

        for i in range(3):   # warm-up: lazily created things (caches, selectors) exist now
            one(i)
        fds = len(os.listdir("/proc/self/fd"))
        threads = threading.active_count()
        zombies = set(zombie_children(os.getpid()))
        for i in range(50):
            one(i)
        assert wait_until(lambda: len(os.listdir("/proc/self/fd")) <= fds, timeout=3), \
            (fds, sorted(os.listdir("/proc/self/fd")))
        assert threading.active_count() <= threads
        assert set(zombie_children(os.getpid())) - zombies == set()
    assert_none_left(dash)


# ------------------------------------------------------------------ the server process itself

def _busy_server(make, methods, env=None):
    server = make(env=env)
    runs = [server.start("pool-map", {"spin": 5.0, "items": 30, "workers": 3,
                                      "start_method": m}) for m in methods]
    for run_id in runs:
        assert wait_until(lambda: server.live_count(run_id) >= 4, timeout=20)
    assert len(run_processes(server.pid)) >= 4 * len(runs)
    return server


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_server_interrupt_or_terminate_leaves_nothing(server_factory, sig):
    server = _busy_server(server_factory, ["fork", "spawn"])
    t0 = time.monotonic()
    os.kill(server.pid, sig)
    assert wait_until(lambda: not run_processes(server.pid), timeout=2.0, step=0.005), \
        run_processes(server.pid)
    took = time.monotonic() - t0
    assert server.proc.wait(timeout=5) in (0, 128 + sig)
    print(f"server {signal.Signals(sig).name}: {took * 1000:.0f} ms to the last run process gone")


@pytest.mark.parametrize("cgroups", ["cgroup", "pgroup"])
def test_server_sigkill_leaves_nothing_within_three_seconds(server_factory, cgroups):
    env = {"MPDASH_NO_CGROUPS": "1"} if cgroups == "pgroup" else None
    server = _busy_server(server_factory, ["fork", "spawn", "forkserver"], env=env)
    before = len(run_processes(server.pid))
    folder = _engine_folder(run_processes(server.pid)[0])
    assert os.path.isdir(folder)
    t0 = time.monotonic()
    os.kill(server.pid, signal.SIGKILL)
    server.proc.wait(timeout=5)
    assert wait_until(lambda: not run_processes(server.pid), timeout=3.0, step=0.005), \
        run_processes(server.pid)
    took = time.monotonic() - t0
    print(f"server SIGKILL ({cgroups}): {before} processes gone in {took * 1000:.0f} ms")
    # The runs' sockets, stack dumps and lessons' TMPDIR went with them (the watchdog).
    assert wait_until(lambda: not os.path.exists(folder), timeout=3.0), os.listdir(folder)


def _engine_folder(pid: int) -> str:
    """The engine's private folder, named by the marker every run process carries."""
    import tempfile
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    return os.path.join(tempfile.gettempdir(), env[b"MPDASH_ENGINE"].decode())


def test_pool_terminated_at_birth_does_not_hang_the_run(dashboard):
    """SIGTERM to a worker between fork() and its interpreter's after-fork reset: with a
    Python-level handler inherited from the harness, the signal was dropped and the main
    waited in join() forever. 20 pools terminated at birth, through the real harness."""
    run = dashboard.engine.start_command(
        [sys.executable, "-m", "mpdash.harness", "tests.programs.quick_terminate", "{}"],
        cwd=PROJECT_ROOT)
    dashboard.engine.wait(run.id, timeout=30)
    assert run.state == "finished" and run.result == 20, (run.state, run.error)


def test_app_py_on_a_busy_port_exits_2_and_names_it(tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, APP, "--port", str(port), "--data", str(tmp_path)],
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.returncode, done.stderr[-1000:])
    assert f"port {port}" in done.stderr and "--port" in done.stderr, done.stderr[-1000:]
    assert "serving on" not in done.stdout


def _mpdash_cgroups(mounts, server_pid):
    return [os.path.join(m, n) for m in mounts for n in os.listdir(m)
            if n.startswith(f"mpdash-{server_pid}-")]


def test_the_watchdog_removes_a_killed_servers_cgroups(server_factory):
    probe = Dashboard(cgroups=True)
    mounts = [os.path.dirname(p) for p in (probe.engine.cgroups.v2_parent,
                                           probe.engine.cgroups.pids_parent) if p]
    probe.close()
    if not mounts:
        pytest.skip(f"no writable cgroups here: {probe.engine.cgroups.reason}")
    server = _busy_server(server_factory, ["fork"])
    assert _mpdash_cgroups(mounts, server.pid), "the server made no cgroup"
    os.kill(server.pid, signal.SIGKILL)
    server.proc.wait(timeout=5)
    assert wait_until(lambda: not _mpdash_cgroups(mounts, server.pid), timeout=3.0), \
        _mpdash_cgroups(mounts, server.pid)


def test_the_next_server_sweeps_cgroups_a_dead_server_left():
    """What the watchdog could not remove (it was killed too) goes at the next start."""
    from mpdash.cgroups import Cgroups
    first = Cgroups(enabled=True)
    parents = [p for p in (first.v2_parent, first.pids_parent) if p]
    first.close()
    if not parents:
        pytest.skip(f"no writable cgroups here: {first.reason}")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()                                # a pid nobody has now
    stale = [os.path.join(os.path.dirname(p), f"mpdash-{gone.pid}-0") for p in parents]
    for path in stale:
        os.mkdir(path)
        os.mkdir(os.path.join(path, "rstale"))   # with a run's cgroup inside, as left
    second = Cgroups(enabled=True)
    try:
        assert [p for p in stale if os.path.exists(p)] == []
    finally:
        second.close()
        for path in stale:                      # a failed sweep must not leave them around
            for sub in (os.path.join(path, "rstale"), path):
                if os.path.isdir(sub):
                    os.rmdir(sub)
