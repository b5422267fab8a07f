"""One cgroup per run where the kernel lets us: the strongest "nothing escapes" there is.

- ``pids.max`` makes the kernel refuse a fork past the run's budget, so a fork bomb stops at
  the kernel (root ignores ``RLIMIT_NPROC``, so no rlimit can do this for us);
- ``cgroup.kill`` (cgroup v2, Linux >= 5.14) SIGKILLs every task of the run in one write,
  including a process that called ``setsid()`` or cleared its environment;
- ``cgroup.procs`` lists every process of the run, whoever its parent is.

Modes (``Cgroups.mode``, shown as ``cgroups`` in ``GET /api/system``):
- ``"v2"``: a pure cgroup v2 hierarchy with the ``pids`` controller; one cgroup per run gives both.
- ``"hybrid"``: systemd's hybrid layout (v1 controllers + an empty v2 ``unified`` hierarchy, as on
  the machine this was written on): ``cgroup.kill`` and membership from v2, ``pids.max`` from the
  v1 ``pids`` hierarchy. A run joins both.
- ``"off"``: no writable cgroups (not root, a read-only /sys, or ``MPDASH_NO_CGROUPS=1``): the
  engine falls back to process groups, known pids and the subreaper.

A run process joins its cgroups *before* it runs anything: the engine starts it through
``/bin/sh -c 'echo 0 > .../cgroup.procs && exec "$@"'`` (see ``wrap``), so there is no window in
which it could fork outside them. Parents are named ``mpdash-<server pid>-<n>``; ones left by a
server that died (SIGKILL) are emptied and removed by the next server.
"""
from __future__ import annotations

import itertools
import logging
import os
import re
import signal

from mpdash.watchdog import rmtree_cgroup   # the watchdog's own: it must import no mpdash

__all__ = ["Cgroups", "RunCgroup", "ENV_DISABLE"]

log = logging.getLogger(__name__)

ENV_DISABLE = "MPDASH_NO_CGROUPS"
_PARENT = re.compile(r"mpdash-(\d+)-(\d+)")
_serial = itertools.count(1)


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(fstype, mount point, options) of every cgroup mount of this process's namespace."""
    found = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
                    found.append((parts[2], parts[1], set(parts[3].split(","))))
    except OSError:
        pass
    return found


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunCgroup:
    """The cgroup(s) of one run."""

    def __init__(self, v2_dir: str | None, pids_dir: str | None):
        self.v2_dir = v2_dir
        self.pids_dir = pids_dir
        self.dirs = [d for d in (v2_dir, pids_dir) if d]

    @property
    def join_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.dirs]

    def pids(self) -> set[int]:
        """Every process in the run's cgroup (v2 when there, else the pids hierarchy)."""
        try:
            return {int(p) for p in _read(os.path.join(self.dirs[0], "cgroup.procs")).split()}
        except (OSError, ValueError):
            return set()

    def set_pids_max(self, n: int) -> None:
        if self.pids_dir:
            _write(os.path.join(self.pids_dir, "pids.max"), str(int(n)))

    def pids_max_hits(self) -> int:
        """How many forks the kernel refused because of ``pids.max``."""
        if not self.pids_dir:
            return 0
        try:
            for line in _read(os.path.join(self.pids_dir, "pids.events")).splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def kill(self) -> None:
        """SIGKILL every task of the run, atomically where the kernel has ``cgroup.kill``."""
        if self.v2_dir:
            try:
                _write(os.path.join(self.v2_dir, "cgroup.kill"), "1")
                return
            except OSError:
                pass
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def signal(self, sig: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def remove(self) -> bool:
        """rmdir both; False while a task (even a dying one) is still inside."""
        done = True
        for d in self.dirs:
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError:
                done = False
        return done


class Cgroups:
    """Finds what this machine allows, and makes one ``RunCgroup`` per run."""

    def __init__(self, enabled: bool = True):
        self.mode = "off"
        self.reason = ""
        self.v2_parent: str | None = None
        self.pids_parent: str | None = None
        self._pending: list[RunCgroup] = []
        name = f"mpdash-{os.getpid()}-{next(_serial)}"
        if not enabled or os.environ.get(ENV_DISABLE, "") not in ("", "0"):
            self.reason = "disabled"
            return
        try:
            self._setup(name)
        except OSError as exc:
            self.reason = f"{exc.strerror or exc}: {getattr(exc, 'filename', '')}"
            self._remove_parents()
            self.mode = "off"
            self.v2_parent = self.pids_parent = None
        if self.mode == "off":
            log.info("no per-run cgroups (%s): process groups only", self.reason)

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def _setup(self, name: str) -> None:
        mounts = _mounts()
        v2 = next((m for t, m, _ in mounts if t == "cgroup2"), None)
        v1_pids = next((m for t, m, opts in mounts if t == "cgroup" and "pids" in opts), None)
        if v2 is None:
            self.reason = "no cgroup v2 hierarchy (cgroup.kill needs it)"
            return
        if not os.path.exists(os.path.join(v2, "cgroup.kill")) and \
                not os.path.exists(os.path.join(v2, "cgroup.procs")):
            self.reason = "cgroup v2 not usable"
            return
        controllers = _read(os.path.join(v2, "cgroup.controllers")).split()
        _sweep_stale(v2)
        if "pids" in controllers:
            # Controllers are handed down one level at a time: root -> our parent -> runs.
            if "pids" not in _read(os.path.join(v2, "cgroup.subtree_control")).split():
                _write(os.path.join(v2, "cgroup.subtree_control"), "+pids")
            self.v2_parent = os.path.join(v2, name)
            os.mkdir(self.v2_parent)
            _write(os.path.join(self.v2_parent, "cgroup.subtree_control"), "+pids")
            self._check_kill()
            self.mode = "v2"
            return
        if v1_pids is None:
            self.reason = "no pids controller in v2 or v1"
            return
        _sweep_stale(v1_pids)
        self.v2_parent = os.path.join(v2, name)
        os.mkdir(self.v2_parent)
        self.pids_parent = os.path.join(v1_pids, name)
        os.mkdir(self.pids_parent)
        self._check_kill()
        self.mode = "hybrid"

    def _check_kill(self) -> None:
        if not os.path.exists(os.path.join(self.v2_parent, "cgroup.kill")):
            raise OSError(0, "kernel has no cgroup.kill (needs Linux >= 5.14)", self.v2_parent)

    def create(self, run_id: str, pids_max: int) -> RunCgroup | None:
        """A fresh cgroup for a run, or None (then the run relies on its process group)."""
        if not self.enabled:
            return None
        self._retry_pending()
        v2_dir = os.path.join(self.v2_parent, run_id) if self.v2_parent else None
        pids_dir = os.path.join(self.pids_parent, run_id) if self.pids_parent else None
        if self.mode == "v2":
            pids_dir = v2_dir
        cg = RunCgroup(v2_dir, pids_dir)
        try:
            for d in cg.dirs:
                os.mkdir(d)
            cg.set_pids_max(pids_max)
        except OSError:
            log.exception("cgroup for run %s", run_id)
            cg.remove()
            return None
        return cg

    def release(self, cg: RunCgroup) -> None:
        """Remove a run's cgroup once it is empty (tried again later if a task lingers)."""
        if not cg.remove():
            self._pending.append(cg)

    def _retry_pending(self) -> None:
        self._pending = [cg for cg in self._pending if not cg.remove()]

    def close(self) -> None:
        """Kill whatever is still inside (there should be nothing) and remove our parents."""
        for cg in self._pending:
            cg.kill()
        if self.v2_parent and os.path.isdir(self.v2_parent):
            _kill_tree(self.v2_parent)
        self._retry_pending()
        self._remove_parents()

    def _remove_parents(self) -> None:
        for parent in (self.v2_parent, self.pids_parent):
            if parent and os.path.isdir(parent):
                rmtree_cgroup(parent)

    @staticmethod
    def wrap(cg: RunCgroup | None, argv: list[str]) -> list[str]:
        """argv that first moves the new process into ``cg``, then execs the real program.
        ``echo 0 > cgroup.procs`` moves the writer itself, and ``exec`` keeps its pid."""
        if cg is None:
            return argv
        files = cg.join_files
        script = " && ".join(f'echo 0 > "${i + 1}"' for i in range(len(files)))
        script += f' && shift {len(files)} && exec "$@"'
        return ["/bin/sh", "-c", script, "mpdash-cgexec", *files, *argv]


def _kill_tree(path: str) -> None:
    try:
        _write(os.path.join(path, "cgroup.kill"), "1")
    except OSError:
        pass


def _sweep_stale(mount: str) -> None:
    """Parents left behind by a server that was SIGKILLed: empty them and remove them."""
    try:
        names = os.listdir(mount)
    except OSError:
        return
    for name in names:
        match = _PARENT.fullmatch(name)
        if match and not _pid_alive(int(match.group(1))):
            path = os.path.join(mount, name)
            _kill_tree(path)
            for root, dirs, _ in os.walk(path):
                for d in dirs:
                    _kill_tree(os.path.join(root, d))
            rmtree_cgroup(path)
