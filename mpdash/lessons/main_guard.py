"""§12: a program that starts processes without ``if __name__ == "__main__":``, run as a script."""
import os
import subprocess
import sys
import tempfile
import textwrap

# The program the class would write, top to bottom. Under spawn (and forkserver) every child
# imports this file again as "__mp_main__" to find greet(), so its top level runs once more in
# each child, including whatever is not behind the guard.
TOP = '''\
import os
import sys
from multiprocessing import Process, set_start_method


def greet(n):
    print(f"child {n} (pid {os.getpid()}): hello")


print(f"top level runs in pid {os.getpid()}, __name__ = {__name__!r}")
'''

BODY = '''\
set_start_method(sys.argv[1], force=True)
children = [Process(target=greet, args=(n,)) for n in range(int(sys.argv[2]))]
for p in children:
    p.start()
for p in children:
    p.join()
print("exit codes of the children:", [p.exitcode for p in children])
'''


def program(fixed):
    if fixed:
        return TOP + 'if __name__ == "__main__":\n' + textwrap.indent(BODY, "    ")
    return TOP + BODY


def main(ctx, fixed=False, children=2, start_method="spawn"):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "program.py")
        with open(path, "w") as f:
            f.write(program(fixed))
        # Run it the way you would: python program.py (in a fresh interpreter of its own).
        done = subprocess.run([sys.executable, path, start_method, str(children)], timeout=60)
    print(f"python program.py {start_method} {children} exited with {done.returncode}")
    return done.returncode


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402
from mpdash.lessons._output import last_exception  # noqa: E402


def analyze(run):
    """How the program's children ended and what they printed on stderr: their own records."""
    kids = [p for p in run.processes.values()
            if p["role"] == "worker" and p["start_method"] is not None]
    failed = [p for p in kids if p["exitcode"] not in (0, None)]
    errors = {}
    for line in run.output:
        if line["stream"] == "err" and line["pid"] in {p["pid"] for p in failed}:
            errors.setdefault(line["pid"], []).append(line["text"])
    error = next((last_exception(errors[p["pid"]]) for p in failed if p["pid"] in errors), None)
    top = sum(1 for line in run.output if line["stream"] == "out"
              and "top level runs in pid" in line["text"])
    method = run.params["start_method"]
    codes = ", ".join(str(p["exitcode"]) for p in kids)
    return [
        {"key": "children_failed", "value": len(failed), "unit": None, "headline": True,
         "text": f"{len(failed)} of {len(kids)} {method} children failed (exit codes: "
                 f"{codes or 'none'}); the program's top level ran {top} times in all."},
        {"key": "child_error", "value": error, "unit": None, "headline": False,
         "text": (f"Each failing child's own stderr ends with: {error}" if error else
                  f"No child printed an error: {'behind the guard' if run.params['fixed'] else 'under ' + method}, "
                  f"re-running the top level started nothing.")},
    ]


LESSON = Lesson(
    id="main-guard", title="The __main__ guard", section="12",
    section_title="When it goes wrong", order=2,
    summary="spawn without if __name__ == \"__main__\": every child crashes at start.",
    explanation=(
        "A spawned child is a fresh interpreter: to find the function it must run, it imports "
        "the program's main file again, under the name __mp_main__, so that file's top level "
        "runs once more in every child. Without the guard that top level starts processes "
        "too, and multiprocessing stops it with a RuntimeError about the bootstrapping phase "
        "before it could fork a runaway tree: every child exits with code 1 and its traceback "
        "on its own stderr. With the guard the children still print the top-level line (it is "
        "outside the guard) but skip what is inside. forkserver imports the main file the same "
        "way; fork copies the running process instead and never re-imports it, which is why "
        "the missing guard goes unnoticed until the code runs on macOS, Windows or Python 3.14. "
        "The lesson writes the program to a file and runs it as python program.py, exactly as "
        "you would."
    ),
    predict="The program starts 2 spawn children without the __main__ guard. How many times "
            "does its top-level print run, and how many children say hello?",
    main=main,
    analyze=analyze,
    params=(
        Param("fixed", "bool", False,
              help="put the program's process-starting code under if __name__ == \"__main__\":"),
        Param("children", "int", 2, min=1, max=8, help="children the program starts"),
        start_method_param("spawn"),
    ),
)
