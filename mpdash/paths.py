"""Where mpdash finds its own files and keeps run history, from a checkout or installed.

Two layouts, told apart by where the page's files are:
- a checkout: ``templates/`` and ``static/`` sit at its top, next to ``mpdash/`` (the layout
  the project keeps); history goes to ``instance/`` there, so ``python app.py`` and ``python -m
  mpdash watch`` started from anywhere share one.
- installed (``pip install <checkout>``): the wheel puts them inside the package
  (``mpdash/templates``, ``mpdash/static``, see pyproject.toml); site-packages is no place for
  history, which goes to the user's data folder instead (XDG Base Directory specification).
"""
from __future__ import annotations

import os

__all__ = ["PACKAGE_DIR", "PROJECT_ROOT", "BOOT_DIR", "INSTALLED", "TEMPLATES_DIR",
           "STATIC_DIR", "default_data_dir"]

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# The directory that contains the package (the checkout, or site-packages). Never on a run's
# PYTHONPATH: only BOOT_DIR is, and its sitecustomize loads PACKAGE_DIR itself (engine/launch.py).
PROJECT_ROOT = os.path.dirname(PACKAGE_DIR)
BOOT_DIR = os.path.join(PACKAGE_DIR, "_boot")
INSTALLED = os.path.isdir(os.path.join(PACKAGE_DIR, "static"))
_ASSETS = PACKAGE_DIR if INSTALLED else PROJECT_ROOT
TEMPLATES_DIR = os.path.join(_ASSETS, "templates")
STATIC_DIR = os.path.join(_ASSETS, "static")


def default_data_dir(environ=os.environ) -> str:
    """Run history's folder when ``--data`` is not given."""
    if not INSTALLED:
        return os.path.join(PROJECT_ROOT, "instance")
    base = environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(base):   # the specification says to ignore a relative value
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "mpdash")
