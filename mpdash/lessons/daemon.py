"""§8: a daemon child is ended when its main program exits; a non-daemon child is waited for."""
import time
from multiprocessing import Process


def count(label, steps, step_seconds):
    for i in range(1, steps + 1):
        print(f"{label}: {i}")
        time.sleep(step_seconds)


def main(ctx, main_seconds=1.0, steps=5, step_seconds=0.5, start_method="fork"):
    d = Process(target=count, args=("daemon", steps, step_seconds), daemon=True)
    n = Process(target=count, args=("non-daemon", steps, step_seconds))
    d.start()
    n.start()

    time.sleep(main_seconds)  # the main's own work
    print("main: my work is done, returning")
    ctx.mark("main returns")
    # No join(): at exit, multiprocessing terminates daemonic children and joins the others.


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402
import signal  # noqa: E402


def analyze(run):
    """What happened after the main returned: only the processes' own records can tell."""
    found = []
    steps = run.params["steps"]
    for proc in run.processes.values():
        if proc["role"] != "worker" or proc["start_method"] is None:
            continue
        counted = sum(1 for line in run.output if line["pid"] == proc["pid"])
        code = proc["exitcode"]
        if proc["daemon"]:
            # Terminated means what the run saw: a terminate() of this child (the exit hook's)
            # and a death by SIGTERM; any other negative code is some other signal, named as such.
            asked = any(e["kind"] == "terminate" and e["channel"] == str(proc["pid"])
                        for e in run.events)
            signalled = code is not None and code < 0
            terminated = asked and code == -signal.SIGTERM
            how = f"ended with exit code {code}"
            if signalled:
                names = {int(s): s.name for s in signal.Signals}
                how += f" ({names.get(-code, f'signal {-code}')}"
                how += ", sent by terminate() at its main's exit)." if asked else ", not sent by its main)."
            else:
                how += "."
            found.append({"key": "daemon_terminated", "value": terminated, "unit": None,
                          "text": f"The daemon child counted to {counted} of {steps} and {how}"})
        else:
            completed = code == 0 and counted == steps
            found.append({"key": "nondaemon_completed", "value": completed, "unit": None,
                          "text": f"The non-daemon child counted to {counted} of {steps} and "
                                  f"exited with code {code}: the main waited for it."})
    for f in found:   # the verdict: how far the daemon got before its main's exit ended it
        f["headline"] = f["key"] == "daemon_terminated"
    return found


LESSON = Lesson(
    id="daemon", title="Daemon processes", section="8", section_title="Daemon processes",
    order=1,
    summary="A daemon child dies with its main program; a non-daemon child is waited for.",
    explanation=(
        "daemon=True tells multiprocessing that a child is only a helper of its main program. "
        "When the main returns, an exit hook of multiprocessing sends SIGTERM to every daemonic "
        "child that is still running (exit code -15) and then waits for the non-daemonic ones to "
        "finish on their own. So here the daemon's count is cut short, while the other child "
        "counts to the end even though the main had nothing left to do. This only happens at a "
        "normal exit: a main killed with SIGKILL runs no exit hook, and its daemonic children "
        "would live on as orphans."
    ),
    predict="The main finishes its work at t = 1 s; each child counts to 5, one step every "
            "0.5 s. How far does the daemon get?",
    main=main,
    analyze=analyze,
    params=(
        Param("main_seconds", "float", 1.0, min=0.0, max=10.0, unit="s",
              help="how long the main works before it returns"),
        Param("steps", "int", 5, min=1, max=50, help="numbers each child counts"),
        Param("step_seconds", "float", 0.5, min=0.05, max=2.0, unit="s",
              help="pause between two numbers"),
        start_method_param(),
    ),
)
