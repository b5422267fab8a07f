"""Serve the mpdash dashboard from the checkout (what ``make run`` does):
``python app.py [--host H] [--port P] [--open] [--hz N] [--data DIR] [--token T] [--python PATH]``.

The same command as ``mpdash serve``: options, checks and serving are in mpdash/serving.py.
"""
from __future__ import annotations

import argparse
import sys

from mpdash import serving


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description="Serve the mpdash dashboard.")
    serving.add_serve_options(parser)
    serving.add_python_option(parser)
    return serving.serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
