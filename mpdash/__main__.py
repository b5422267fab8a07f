import sys

from mpdash.cli import main

sys.exit(main(prog="python -m mpdash"))
