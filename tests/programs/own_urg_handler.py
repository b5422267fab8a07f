"""A program with its own handler for the signal mpdash's stacks use (SIGURG): both must run.

Prints what ``signal.getsignal`` said before it installed its handler, then waits (in Python,
so its handler can run) until the handler has run, and says so.
"""
import signal
import sys
import time

ran = []


def on_urg(signum, frame):
    ran.append(signum)


if __name__ == "__main__":
    print(f"before: {signal.getsignal(signal.SIGURG)!r}", flush=True)
    previous = signal.signal(signal.SIGURG, on_urg)
    print(f"previous: {previous!r}; now: {signal.getsignal(signal.SIGURG).__name__}", flush=True)
    deadline = time.monotonic() + float(sys.argv[1] if len(sys.argv) > 1 else 20)
    while not ran and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"own handler ran: {bool(ran)}", flush=True)
    sys.exit(0 if ran else 3)
