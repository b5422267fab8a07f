"""``pip install <checkout>`` (not editable) into a fresh venv gives a working ``mpdash`` command
in any directory: the page and its static files, the lessons, and the probe inside a watched
program all come from the installed package, and history goes to the user's data folder.

Offline and quick: the venv is made without pip (the dev venv's pip installs into it with
``--python``), its dependencies are the dev venv's site-packages through a .pth file, and the
wheel is built by the checkout's own backend (tools/build_backend.py), which needs nothing
installed.
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile

import pytest

from mpdash import paths
from tests.conftest import finish
from tests.leaks import assert_none_left

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = """\
import multiprocessing, sys

def child(n):
    print("child says", n, flush=True)

if __name__ == "__main__":
    worker = multiprocessing.Process(target=child, args=(7,))
    worker.start()
    worker.join()
    print("probe from", sys.modules["mpdash"].__file__, flush=True)
"""


class Installed:
    def __init__(self, base):
        self.venv = base / "venv"
        self.bin = self.venv / "bin"
        self.elsewhere = base / "elsewhere"     # no mpdash checkout anywhere above it
        self.elsewhere.mkdir()
        self.xdg = base / "xdg"
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MPDASH_TOKEN")}
        self.env.update(XDG_DATA_HOME=str(self.xdg), HOME=str(base / "home"),
                        PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}")

    def run(self, *argv, timeout=60) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=self.elsewhere, env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    def site_packages(self) -> str:
        return self.run(str(self.bin / "python"), "-c",
                        "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("install")
    inst = Installed(base)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(inst.venv)], check=True,
                   timeout=60)
    site = inst.site_packages()
    with open(os.path.join(site, "_mpdash_test_deps.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")   # flask, psutil... of the dev venv
    pip = [sys.executable, "-m", "pip", "--python", str(inst.bin / "python"), "--no-input",
           "--disable-pip-version-check"]
    wheels = base / "wheels"
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "--wheel-dir", str(wheels), ROOT],
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stdout + built.stderr
    (inst.wheel,) = wheels.glob("mpdash-*.whl")
    done = subprocess.run([*pip, "install", "--no-deps", "--no-index", str(inst.wheel)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    inst.package = os.path.join(site, "mpdash")
    return inst


def test_the_wheel_carries_the_page_the_boot_folder_and_the_command(installed):
    with zipfile.ZipFile(installed.wheel) as whl:
        names = set(whl.namelist())
        entry_points = whl.read("mpdash-0.1.0.dist-info/entry_points.txt").decode()
        metadata = whl.read("mpdash-0.1.0.dist-info/METADATA").decode()
    for tree in ("templates", "static"):
        for folder, _, files in os.walk(os.path.join(ROOT, tree)):
            for name in files:
                rel = os.path.relpath(os.path.join(folder, name), ROOT)
                assert f"mpdash/{rel}" in names, rel
    assert "mpdash/_boot/sitecustomize.py" in names and "mpdash/cli.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert "mpdash = mpdash.cli:main" in entry_points
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        pins = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert pins and all(f"Requires-Dist: {pin}" in metadata for pin in pins)


def test_list_and_run_from_another_directory(installed):
    listed = installed.run(str(installed.bin / "mpdash"), "list")
    assert listed.returncode == 0, listed.stderr
    assert "pool-map" in listed.stdout and "workers=3" in listed.stdout
    as_module = installed.run(str(installed.bin / "python"), "-m", "mpdash", "list")
    assert as_module.returncode == 0 and as_module.stdout == listed.stdout
    ran = installed.run(str(installed.bin / "mpdash"), "run", "pool-map", "--json")
    assert ran.returncode == 0, ran.stderr
    run = json.loads(ran.stdout)
    assert run["state"] == "finished" and run["result"] == [1, 4, 9, 16, 25]


def test_watch_a_program_from_another_directory(installed):
    (installed.elsewhere / "prog.py").write_text(PROGRAM)
    proc = subprocess.Popen([str(installed.bin / "mpdash"), "watch", "--port", "0", "--exit",
                             "--json", "--", "python", "prog.py"],
                            cwd=installed.elsewhere, env=installed.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = finish(proc, 60)
    assert_none_left(proc.pid)
    assert proc.returncode == 0, err
    run = json.loads(out)
    main = next(p for p in run["processes"] if p["role"] == "main")
    (child,) = [p for p in run["processes"] if p["role"] == "worker"]
    lines = {(line["pid"], line["text"]) for line in run["output"]}
    assert (child["pid"], "child says 7") in lines   # the probe is in the child too
    assert (main["pid"], f"probe from {installed.package}/__init__.py") in lines
    # Not in a checkout: the history is in $XDG_DATA_HOME/mpdash.
    assert (installed.xdg / "mpdash" / "mpdash.sqlite3").is_file()


def _readline(stream, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"nothing printed within {timeout} s"
    return stream.readline()


def _get(url: str) -> bytes:
    # No retry: the port is listening before the link is printed.
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        return answer.read()


def test_serve_gives_the_page_and_its_static_files_from_another_directory(installed):
    proc = subprocess.Popen([str(installed.bin / "mpdash"), "serve", "--port", "0"],
                            cwd=installed.elsewhere, env=installed.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _readline(proc.stdout, 30)
        assert line.startswith("mpdash serving on http://127.0.0.1:"), line + proc.stderr.read()
        base = line.split()[3].rstrip("/")
        page = _get(f"{base}/").decode()
        assert 'data-testid="run"' in page
        static = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
        assert static, page[:500]
        for path in static:
            with open(os.path.join(ROOT, path.lstrip("/")), "rb") as f:
                assert _get(f"{base}{path}") == f.read(), path
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert_none_left(proc.pid)


def test_the_installed_data_folder_follows_xdg(installed):
    home = installed.env["HOME"]
    show = [str(installed.bin / "python"), "-c",
            "from mpdash import paths; print(paths.INSTALLED, paths.default_data_dir())"]
    assert installed.run(*show).stdout.split() == ["True", f"{installed.xdg}/mpdash"]
    for xdg in ("", "relative/ignored"):
        installed.env["XDG_DATA_HOME"] = xdg
        try:
            assert installed.run(*show).stdout.split() == ["True", f"{home}/.local/share/mpdash"]
        finally:
            installed.env["XDG_DATA_HOME"] = str(installed.xdg)


def test_from_the_checkout_history_stays_in_instance():
    assert not paths.INSTALLED
    assert paths.default_data_dir() == os.path.join(ROOT, "instance")
    assert paths.TEMPLATES_DIR == os.path.join(ROOT, "templates")
    assert paths.STATIC_DIR == os.path.join(ROOT, "static")


def _backend(source_dir, hook: str, out_dir) -> str:
    """Call a hook of the build backend as a frontend does: in the source tree's root."""
    code = (f"import sys; sys.path.insert(0, 'tools'); import build_backend; "
            f"print(build_backend.{hook}({str(out_dir)!r}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=source_dir, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_sdist_builds_the_same_wheel(installed, tmp_path):
    import tarfile
    sdist = tmp_path / _backend(ROOT, "build_sdist", tmp_path)
    with tarfile.open(sdist) as tar:
        # Our own archive; the filter (3.11.4+) only keeps newer Pythons from warning.
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp_path / "src", **safe)
    (source,) = (tmp_path / "src").iterdir()
    (tmp_path / "out").mkdir()
    wheel = tmp_path / "out" / _backend(source, "build_wheel", tmp_path / "out")
    assert wheel.name == installed.wheel.name
    assert wheel.read_bytes() == installed.wheel.read_bytes()   # reproducible, nothing missing
