"""The engine's rooms, one job each; ``mpdash.runs.Engine`` is the facade over them.

- ``context``   what they share: the engine's core state and a live run's record
- ``reactor``   the selector loop on one thread, wake-ups, requests run on that thread
- ``launch``    a run's environment (``protocol.ENV_*``), argv, cgroup exec, the watchdog
- ``streams``   probe connections and raw stdout/stderr, cut into lines (protocol.LineBuffer)
- ``handlers``  probe messages: a table {protocol kind: function}
- ``reaping``   pidfds, exit codes, how a process ended, orphans and zombies through procfs
- ``stopping``  Stop, limits, signalling a run's processes
- ``finishing`` timers, ending a run and its analysis
- ``livepools`` a live run's pools, refreshed while it runs (pools.py's fold, fed as events come)
- ``limits``    which limits a run has (a lesson's, a watched program's) and whether it is past them
- ``program``   a watched program as a program: its script's source, findings at its end

Dependencies go one way: context <- stopping <- reaping <- handlers <- streams <- finishing
<- launch; livepools needs only context (finishing ticks it); reactor stands alone; limits and program need only mpdash.state (the sampler uses
limits too). Nothing here imports Flask.
"""
