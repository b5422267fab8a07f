"""mpdash's PEP 517 build backend (``pip install .`` builds the wheel with it): standard library only.

Why not setuptools: the wheel's layout is fixed and small, and a backend that needs nothing
installed builds offline and at once. setuptools before 70.1 (the one every CPython 3.11 venv
comes with) cannot build a wheel without the separate ``wheel`` package, so ``pip install .``
would have to download a build environment first, and tests/test_install.py could not run
without the network.

The wheel (pure Python, ``py3-none-any``) holds:
- ``mpdash/``, every file but bytecode caches (``_boot/sitecustomize.py`` included: a run's
  PYTHONPATH needs it);
- ``templates/`` and ``static/`` from the checkout's top, as ``mpdash/templates`` and
  ``mpdash/static``: the project keeps them at the top, an installed package finds them inside
  itself (mpdash/paths.py);
- the ``.dist-info``: metadata from pyproject.toml's ``[project]``, the version from
  ``mpdash/__init__.py``, the dependencies from requirements.txt, the ``mpdash`` command.
Entries are sorted and dated ``SOURCE_DATE_EPOCH`` (default 1980-01-01): the same tree gives the
same wheel.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path

__all__ = ["build_wheel", "build_sdist", "get_requires_for_build_wheel",
           "get_requires_for_build_sdist"]

PACKAGE = "mpdash"
# Checkout folder -> where it goes in the wheel.
TREES = {"mpdash": "mpdash", "templates": "mpdash/templates", "static": "mpdash/static"}
SDIST_FILES = ("pyproject.toml", "README.md", "requirements.txt", "app.py", "tools/build_backend.py")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)   # the earliest date a zip file can carry


def get_requires_for_build_wheel(config_settings=None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings=None) -> list[str]:
    return []


def _root() -> Path:
    return Path.cwd()   # PEP 517: hooks run in the source tree's root


def _project(root: Path) -> dict:
    with open(root / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    init = (root / PACKAGE / "__init__.py").read_text()
    project["version"] = re.search(r'^__version__ = "([^"]+)"', init, re.M).group(1)
    project["dependencies"] = [
        line.split("#", 1)[0].strip() for line in (root / "requirements.txt").read_text().splitlines()
        if line.split("#", 1)[0].strip() and not line.lstrip().startswith("-")]
    return project


def _metadata(root: Path, project: dict) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}",
             f"Summary: {project.get('description', '')}"]
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Requires-Dist: {dep}" for dep in project["dependencies"]]
    readme = project.get("readme")
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        return "\n".join(lines) + "\n\n" + (root / readme).read_text()
    return "\n".join(lines) + "\n"


def _files(root: Path) -> list[tuple[Path, str, str]]:
    """(file, its name in the checkout, its name in the wheel), bytecode caches left out."""
    found = []
    for tree, target in TREES.items():
        for path in (root / tree).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                rel = path.relative_to(root / tree).as_posix()
                found.append((path, f"{tree}/{rel}", f"{target}/{rel}"))
    return sorted(found, key=lambda item: item[2])


def _date() -> tuple:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return time.gmtime(int(epoch))[:6] if epoch else ZIP_EPOCH


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None) -> str:
    root = _root()
    project = _project(root)
    name, version = project["name"], project["version"]
    dist_info = f"{name}-{version}.dist-info"
    scripts = "".join(f"{cmd} = {target}\n" for cmd, target in project.get("scripts", {}).items())
    contents = [(wheel_name, path.read_bytes()) for path, _, wheel_name in _files(root)]
    contents += [
        (f"{dist_info}/METADATA", _metadata(root, project).encode()),
        (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: mpdash tools/build_backend.py\n"
                               b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{dist_info}/entry_points.txt", f"[console_scripts]\n{scripts}".encode()),
    ]
    record = [_record_line(n, data) for n, data in contents] + [f"{dist_info}/RECORD,,"]
    contents.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    filename = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as whl:
        for wheel_name, data in contents:
            info = zipfile.ZipInfo(wheel_name, date_time=_date())
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            whl.writestr(info, data)
    return filename


def build_sdist(sdist_directory, config_settings=None) -> str:
    """A source archive that builds the same wheel (what ``python -m build`` makes first)."""
    root = _root()
    project = _project(root)
    base = f"{project['name']}-{project['version']}"
    members = [(root / rel, rel) for rel in SDIST_FILES]
    members += [(path, rel) for path, rel, _ in _files(root)]
    filename = f"{base}.tar.gz"
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", 315532800))
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tar:
        pkg_info = _metadata(root, project).encode()
        entries = [(f"{base}/PKG-INFO", pkg_info)]
        entries += [(f"{base}/{rel}", path.read_bytes()) for path, rel in members]
        for name, data in sorted(entries):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
    return filename
