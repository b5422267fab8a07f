"""Users are not root (issue 12): Stop, SIGTERM, SIGKILL and orphan cleanup with the server run
by an unprivileged user, where cgroups are not writable (the process-group path, the
subreaper and the watchdog do the work).

CI runs as root, so the setup makes such a user when it is missing (``useradd``) and starts
the server through ``setpriv`` (it execs: the pid we signal is the server's own). What the user
runs must be readable by it: the checkout sits in root's folders, so a copy of the files the
server needs goes into a temporary folder; the project's venv interpreter lives under
``/root`` (mode 700), so when the user cannot execute it, a venv is made from the system's
CPython of the same version, with a copy of the project venv's packages. Not root: the
server runs as ourselves, who are that unprivileged user already.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from mpdash import procfs
from mpdash.runs import PROJECT_ROOT
from tests.conftest import finish, post_run, wait_until
from tests.leaks import run_processes

USER = "mpdash-test"
_TREE = ("app.py", "mpdash", "templates", "static", os.path.join("tests", "programs"))
# The packages, and the interpreter starting itself again as the server starts a lesson: an
# exec that seems to work at first can still fail for sys.executable (a venv's python linking
# into /root may start through a fallback, then be refused).
_DEPS_CHECK = ("import flask, flask_socketio, psutil, requests, subprocess, sys; "
               "subprocess.run([sys.executable, '-c', 'import psutil'], check=True)")


# What the server does not import: left out of the user's copy of the venv's packages.
_NOT_NEEDED = ("playwright*", "pip", "pip-*", "setuptools*", "_pytest", "pytest*", "hypothesis*",
               "pygments*", "greenlet*", "__pycache__")


def _alive(pid):
    stat = procfs.read_stat(pid)
    return stat is not None and stat.state not in ("Z", "X")


def _uid_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class User:
    """How to run a command as the unprivileged user: ``argv(cmd)``, ``python``, ``root``
    (the tree it runs from) and ``uid``; ``home`` is a folder it owns."""

    def __init__(self, prefix, python, root, uid, home, switched):
        self.prefix, self.python, self.root, self.uid = prefix, python, root, uid
        self.home, self.switched = home, switched

    def argv(self, *cmd):
        return [*self.prefix, *cmd]

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
        env.update(HOME=self.home, XDG_DATA_HOME=os.path.join(self.home, "data"),
                   PYTHONDONTWRITEBYTECODE="1", **extra)
        env.pop("PYTHONPATH", None)
        return env


def _ensure_user():
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    done = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                           "/usr/sbin/nologin", USER], capture_output=True, text=True, timeout=30)
    if done.returncode not in (0, 9):   # 9: made meanwhile by another session
        pytest.skip(f"cannot create the unprivileged user {USER}: {done.stderr.strip()}")
    return pwd.getpwnam(USER)


def _works(prefix, python, cwd, env):
    try:
        return subprocess.run([*prefix, python, "-c", _DEPS_CHECK], cwd=cwd, env=env,
                              capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _user_python(prefix, base, env):
    """An interpreter the user can run with the project's dependencies importable."""
    if _works(prefix, sys.executable, base, env):
        return sys.executable
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    system = shutil.which(f"python{version}", path="/usr/local/bin:/usr/bin:/bin")
    if system is None:
        pytest.skip(f"{USER} cannot run {sys.executable} (not readable by it) and there is no "
                    f"system python{version} to build a venv from")
    venv = os.path.join(base, "venv")
    subprocess.run([system, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    target = os.path.join(venv, "lib", f"python{version}", "site-packages")
    # A copy, not a .pth to the project venv's: a clone in a mode-700 folder (mktemp -d) hides
    # that venv from the user. Without the test-only giants (playwright is 160 MB).
    for packages in site.getsitepackages():
        if os.path.isdir(packages):
            shutil.copytree(packages, target, dirs_exist_ok=True, symlinks=True,
                            ignore=shutil.ignore_patterns(*_NOT_NEEDED))
    subprocess.run(["chmod", "-R", "a+rX", venv], check=True, timeout=60)
    python = os.path.join(venv, "bin", "python")
    if not _works(prefix, python, base, env):
        pytest.skip(f"{USER} can run neither {sys.executable} nor a venv of {system} with the "
                    f"project's packages ({', '.join(site.getsitepackages())}) on its path")
    return python


@pytest.fixture(scope="module")
def user():
    base = tempfile.mkdtemp(prefix="mpdash-notroot-")
    try:
        os.chmod(base, 0o755)
        home = os.path.join(base, "home")
        os.mkdir(home)
        if os.geteuid() != 0:
            yield User([], sys.executable, PROJECT_ROOT, os.getuid(), home, switched=False)
            return
        entry = _ensure_user()
        os.chown(home, entry.pw_uid, entry.pw_gid)
        prefix = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                  "--clear-groups", "--"]
        root = os.path.join(base, "tree")
        for part in _TREE:
            src, dst = os.path.join(PROJECT_ROOT, part), os.path.join(root, part)
            if os.path.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(src, dst)
        subprocess.run(["chmod", "-R", "a+rX", base], check=True, timeout=60)
        probe = User(prefix, None, root, entry.pw_uid, home, switched=True)
        python = _user_python(prefix, base, probe.env())
        print(f"\nthe server runs as {USER} (uid {entry.pw_uid}) with {python}, from {root}")
        yield User(prefix, python, root, entry.pw_uid, home, switched=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


class UserServer:
    """``python app.py`` run by the user on a free loopback port."""

    def __init__(self, user, env=None):
        self.data = os.path.join(user.home, f"data-{time.monotonic_ns()}")
        self.proc = subprocess.Popen(
            user.argv(user.python, os.path.join(user.root, "app.py"), "--port", "0",
                      "--data", self.data),
            cwd=user.home, env=user.env(**(env or {})), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        assert "serving on http://" in line, line
        self.url = line.split()[3].split("?")[0].rstrip("/")
        self.pid = self.proc.pid
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        host, port = self.url.split("//")[1].rsplit(":", 1)
        assert wait_until(lambda: _accepts(host, int(port)), timeout=15), "server never listened"

    def get(self, path):
        import requests
        return requests.get(f"{self.url}{path}", timeout=10).json()

    def start(self, lesson, params):
        return post_run(self.url, lesson, params)

    def live_pids(self, run_id):
        return [p["pid"] for p in self.get(f"/api/runs/{run_id}")["processes"]
                if p["ended_at"] is None]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for pid in run_processes(self.pid):   # never leave a failed test's processes around
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _accepts(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def server(user):
    made = []

    def make(**kw):
        made.append(UserServer(user, **kw))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _busy(make, user, methods):
    server = make()
    system = server.get("/api/system")
    if user.switched:   # the point of these tests: nothing of root's is there to lean on
        assert system["cgroups"] == "off", system["cgroups"]
    runs = [server.start("pool-map", {"spin": 5.0, "items": 30, "workers": 3, "start_method": m})
            for m in methods]
    for run_id in runs:
        assert wait_until(lambda: len(server.live_pids(run_id)) >= 4, timeout=30)
    pids = run_processes(server.pid)
    assert len(pids) >= 4 * len(runs)
    assert {_uid_of(pid) for pid in pids} == {user.uid}, "the run's processes are not the user's"
    return server, runs


def test_stop_as_a_user_leaves_nothing(server, user):
    import requests
    srv, (run_id,) = _busy(server, user, ["fork"])
    pids = srv.live_pids(run_id)
    t0 = time.monotonic()
    r = requests.post(f"{srv.url}/api/runs/{run_id}/stop", timeout=10)
    assert r.status_code == 200, r.text
    assert wait_until(lambda: not any(_alive(p) for p in pids), timeout=2.0, step=0.005), \
        [p for p in pids if _alive(p)]
    took = time.monotonic() - t0
    run = srv.get(f"/api/runs/{run_id}")
    assert run["state"] == "stopped" and all(p["ended_at"] is not None for p in run["processes"])
    print(f"Stop as {USER if user.switched else 'this user'}: {took * 1000:.0f} ms")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_server_signalled_as_a_user_leaves_nothing(server, user, sig):
    srv, _ = _busy(server, user, ["fork", "spawn"])
    t0 = time.monotonic()
    os.kill(srv.pid, sig)
    # SIGTERM: the server ends its runs itself; SIGKILL: its watchdog sweeps them.
    limit = 2.0 if sig == signal.SIGTERM else 3.0
    assert wait_until(lambda: not run_processes(srv.pid), timeout=limit, step=0.005), \
        run_processes(srv.pid)
    took = time.monotonic() - t0
    assert srv.proc.wait(timeout=5) in ((0, 128 + sig) if sig == signal.SIGTERM else (-sig,))
    print(f"server {signal.Signals(sig).name} as a user: {took * 1000:.0f} ms to the last "
          f"run process gone")


def test_orphans_of_a_watched_program_end_with_it_as_a_user(user):
    """``watch`` run by the user: the orphan (re-parented to the server, a subreaper that needs
    no privilege) is seen, marked and killed when the program ends."""
    script = os.path.join(user.root, "tests", "programs", "orphan_maker.py")
    cmd = user.argv(user.python, "-m", "mpdash", "watch", "--port", "0", "--exit", "--json",
                    "--data", os.path.join(user.home, f"w-{time.monotonic_ns()}"), "--",
                    user.python, script, "hold", "1")
    proc = subprocess.Popen(cmd, cwd=user.root, env=user.env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = finish(proc, 60)
    assert proc.returncode == 0, err.decode()
    run = json.loads(out)
    orphan = next(int(l["text"].split()[1]) for l in run["output"] if l["text"].startswith("orphan"))
    rec = next(p for p in run["processes"] if p["pid"] == orphan)
    assert rec["orphan"] and rec["ended_at"] is not None and run["state"] == "finished"
    assert not _alive(orphan), "the orphan outlived its run"
    assert not run_processes(proc.pid)
