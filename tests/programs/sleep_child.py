"""A Python main waiting for a program that is not Python (``sleep``)."""
import subprocess
import sys

if __name__ == "__main__":
    subprocess.run(["sleep", sys.argv[1] if len(sys.argv) > 1 else "30"])
