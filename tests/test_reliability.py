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

from mpdash import procfs, protocol
from mpdash.dashboard import Dashboard
from mpdash.runs import BOOT_DIR, PROJECT_ROOT, LimitError
from mpdash.state import Limits
from tests.leaks import assert_none_left, run_processes, zombie_children

PROGRAMS = os.path.join(os.path.dirname(__file__), "programs")



def program(name, *args):
    return [sys.executable, os.path.join(PROGRAMS, name), *map(str, args)]


def wait_for(predicate, timeout=15.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def alive(pid):
    stat = procfs.read_stat(pid)
    return stat is not None and stat.state not in ("Z", "X")


def gone_within(pids, timeout):
    """Seconds until every pid is gone (dead or a zombie), or None if some outlived timeout."""
    t0 = time.monotonic()
    if wait_for(lambda: not any(alive(p) for p in pids), timeout=timeout, step=0.005):
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
    assert_none_left(os.getpid())


def live_pids_when(run, n, timeout=20):
    assert wait_for(lambda: len(run.live_pids()) >= n, timeout=timeout), run.processes
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
    assert run_processes(os.getpid()) == []
    print(f"stop {make_dash.mode} {method}: {took * 1000:.0f} ms to the last process gone")


def test_finished_run_kills_its_leftovers(make_dash):
    dash = make_dash()
    run = dash.engine.start_command(program("orphan_maker.py"))
    orphan = int(wait_for(lambda: next((l["text"].split()[1] for l in list(run.output)
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
    run = dash.engine.start_command(program("orphan_maker.py", *(["setsid"] if setsid else []),
                                            "hold", 30))
    orphan = int(wait_for(lambda: next((l["text"].split()[1] for l in list(run.output)
                                        if l["text"].startswith("orphan")), None)))
    # Its parent is dead: it is the server's child now, found by a scan, and marked.
    assert wait_for(lambda: run.processes.get(orphan, {}).get("orphan"), timeout=5), \
        run.processes.get(orphan)
    assert run.processes[orphan]["ppid"] == os.getpid() and alive(orphan)
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
    assert run_processes(os.getpid()) == []


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
    dash = make_dash(max_processes=64)
    # 4 children per process, 5 levels: up to 1364 processes if nothing stopped it.
    run = dash.engine.start_command(program("forkbomb.py", 4, 5))
    dash.engine.wait(run.id, timeout=20)
    assert run.state == "stopped" and run.error.startswith("process limit"), run.error
    assert_none_left(os.getpid(), within=3)
    after = dash.engine.start_lesson("pool-map", {})
    dash.engine.wait(after.id, timeout=20)
    assert after.state == "finished" and after.result == [1, 4, 9, 16, 25]


def test_pids_max_stops_a_fork_bomb_at_the_kernel(make_dash):
    if make_dash.mode != "cgroup":
        pytest.skip("pids.max is the cgroup path; the fallback is the test above")
    # The server's own limit set out of the way: only the kernel stands in the bomb's way.
    dash = make_dash(max_processes=10_000, run_tasks=24)
    run = dash.engine.start_command(program("forkbomb.py", 4, 4))   # up to 340 otherwise
    cg = dash.engine.cgroup_of(run.id)
    assert wait_for(lambda: cg.pids_max_hits() > 0, timeout=10), "the kernel refused no fork"
    time.sleep(0.5)
    assert len(cg.pids()) <= 24
    assert len(run.processes) <= 24
    dash.engine.stop(run.id)
    assert any("fork refused" in l["text"] for l in run.output)


def test_memory_ceiling_stops_the_run(make_dash):
    dash = make_dash(run_rss_bytes=150 * 2**20)
    run = dash.engine.start_command(program("hog.py", 80, 3))
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
        assert wait_for(lambda: run.main_pid in cg.pids(), timeout=5)
        dash.engine.wait(run.id, timeout=20)
        assert wait_for(lambda: not any(os.path.exists(d) for d in cg.dirs), timeout=3)
        parents = [p for p in (cgroups.v2_parent, cgroups.pids_parent) if p]
    assert not any(os.path.exists(p) for p in parents)
    assert_none_left(os.getpid())


# ------------------------------------------------------------------ the PDEATHSIG race

@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_children_whose_parent_died_before_their_death_signal_leave(method, tmp_path):
    """The main exits the instant start() returns: its children have not run a line yet, so
    PR_SET_PDEATHSIG cannot be set in time; the probe's re-check after prctl must catch it.
    No server here (it would clean up anyway): the probe alone must do it."""
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
        return [int(name) for name in filter(str.isdigit, os.listdir("/proc"))
                if procfs.env_value(int(name), protocol.ENV_ENGINE) == marker and alive(int(name))]

    left = wait_for(lambda: not with_marker(), timeout=5)
    survivors = with_marker()
    for pid in survivors:   # a failed test must not leave 60 s sleepers behind
        os.kill(pid, signal.SIGKILL)
    # They were re-parented to this process (a subreaper since the first Dashboard): reap.
    time.sleep(0.05)
    for pid in zombie_children(os.getpid(), group=racer.pid):
        os.waitpid(pid, 0)
    assert left, f"children outlived their main: {survivors}"


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
        assert wait_for(lambda: len(os.listdir("/proc/self/fd")) <= fds, timeout=3), \
            (fds, sorted(os.listdir("/proc/self/fd")))
        assert threading.active_count() <= threads
        assert set(zombie_children(os.getpid())) - zombies == set()
    assert_none_left(os.getpid())


# ------------------------------------------------------------------ the server process itself

APP = os.path.join(PROJECT_ROOT, "app.py")


def _accepts(host, port):
    import socket
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


class Server:
    """``python app.py`` as a child process on a free loopback port."""

    def __init__(self, *args, env=None):
        import tempfile
        self.data = tempfile.TemporaryDirectory(prefix="mpdash-test-data-")
        self.proc = subprocess.Popen([sys.executable, APP, "--port", "0", "--data",
                                      self.data.name, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline()   # the URL, printed with flush=True
        assert "serving on http://" in line, line
        self.first_line = line
        self.url = line.split()[3].split("?")[0].rstrip("/")
        self.pid = self.proc.pid
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        host, port = self.url.split("//")[1].rsplit(":", 1)
        assert wait_for(lambda: _accepts(host, int(port)), timeout=15), "server never listened"

    def start(self, lesson, params):
        import requests
        r = requests.post(f"{self.url}/api/runs", json={"lesson": lesson, "params": params},
                          timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def live_count(self, run_id):
        import requests
        run = requests.get(f"{self.url}/api/runs/{run_id}", timeout=10).json()
        return sum(p["ended_at"] is None for p in run["processes"])

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for pid in run_processes(self.pid):   # never leave a failed test's processes around
            os.kill(pid, signal.SIGKILL)
        self.data.cleanup()


@pytest.fixture
def server_factory():
    made = []

    def make(*args, **kw):
        made.append(Server(*args, **kw))
        return made[-1]

    yield make
    for server in made:
        server.close()


def _busy_server(make, methods, env=None):
    server = make(env=env)
    runs = [server.start("pool-map", {"spin": 5.0, "items": 30, "workers": 3,
                                      "start_method": m}) for m in methods]
    for run_id in runs:
        assert wait_for(lambda: server.live_count(run_id) >= 4, timeout=20)
    assert len(run_processes(server.pid)) >= 4 * len(runs)
    return server


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_server_interrupt_or_terminate_leaves_nothing(server_factory, sig):
    server = _busy_server(server_factory, ["fork", "spawn"])
    t0 = time.monotonic()
    os.kill(server.pid, sig)
    assert wait_for(lambda: not run_processes(server.pid), timeout=2.0, step=0.005), \
        run_processes(server.pid)
    took = time.monotonic() - t0
    assert server.proc.wait(timeout=5) in (0, 128 + sig)
    print(f"server {signal.Signals(sig).name}: {took * 1000:.0f} ms to the last run process gone")


@pytest.mark.parametrize("cgroups", ["cgroup", "pgroup"])
def test_server_sigkill_leaves_nothing_within_three_seconds(server_factory, cgroups):
    env = {"MPDASH_NO_CGROUPS": "1"} if cgroups == "pgroup" else None
    server = _busy_server(server_factory, ["fork", "spawn", "forkserver"], env=env)
    before = len(run_processes(server.pid))
    t0 = time.monotonic()
    os.kill(server.pid, signal.SIGKILL)
    server.proc.wait(timeout=5)
    assert wait_for(lambda: not run_processes(server.pid), timeout=3.0, step=0.005), \
        run_processes(server.pid)
    took = time.monotonic() - t0
    print(f"server SIGKILL ({cgroups}): {before} processes gone in {took * 1000:.0f} ms")


def test_pool_terminated_at_birth_does_not_hang_the_run(dashboard):
    """SIGTERM to a worker between fork() and its interpreter's after-fork reset: with a
    Python-level handler inherited from the harness, the signal was dropped and the main
    waited in join() forever. 20 pools terminated at birth, through the real harness."""
    run = dashboard.engine.start_command(
        [sys.executable, "-m", "mpdash.harness", "tests.programs.quick_terminate", "{}"],
        cwd=PROJECT_ROOT)
    dashboard.engine.wait(run.id, timeout=30)
    assert run.state == "finished" and run.result == 20, (run.state, run.error)
