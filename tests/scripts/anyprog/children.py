"""Children that are not multiprocessing's, each ending its own way (watched by tests).

- ``sleep 0.6`` started by subprocess.run: reaped by this program, exit 0;
- a raw os.fork() that exits with 3 at once, reaped by os.waitpid (gone from /proc before the
  server reads its hello, most of the time: it must name itself);
- a raw os.fork() killed by SIGTERM from here, reaped by os.wait;
- ``sh -c 'sleep 1.2; exit 5'``: sh is reaped by subprocess (5); its own sleep is reaped by
  sh, which tells nobody: that one's end can only be "unknown". (sh forks a copy of itself
  that then execs sleep: long enough for a scan to see what it became.)
"""
import os
import signal
import subprocess
import time

subprocess.run(["sleep", "0.6"], check=True)

pid = os.fork()
if pid == 0:
    os._exit(3)
_, status = os.waitpid(pid, 0)
print("forked child exited with", os.waitstatus_to_exitcode(status), flush=True)

pid = os.fork()
if pid == 0:
    time.sleep(30)
    os._exit(0)
time.sleep(0.6)
os.kill(pid, signal.SIGTERM)
print("wait says", os.wait()[0] == pid, flush=True)

done = subprocess.run(["sh", "-c", "sleep 1.2; exit 5"])
print("sh exited with", done.returncode, flush=True)
