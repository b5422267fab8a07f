"""§3, method 2: subclass Process and override run()."""
import time
from multiprocessing import Process


class MyProcess(Process):
    def __init__(self, count=5, delay=0.0):
        super().__init__()
        self.count = count
        self.delay = delay

    def run(self):
        for i in range(1, self.count + 1):
            print(f"Process {self.name}: {i}")
            time.sleep(self.delay)


def main(ctx, processes=2, count=5, delay=0.0, call_run=False, start_method="fork"):
    workers = [MyProcess(count, delay) for _ in range(processes)]

    if call_run:
        # The classic mistake: run() executes right here, in the main process, one after another.
        for p in workers:
            p.run()
        return

    for p in workers:
        p.start()

    for p in workers:
        p.join()


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402
from mpdash.lessons._output import who_printed  # noqa: E402


def analyze(run):
    return who_printed(run, ': 1', headline='printing_processes')

LESSON = Lesson(
    id="process-subclass", title="Process subclass", section="3",
    section_title="Python's multiprocessing module", order=2,
    summary="A Process subclass whose run() executes in the child.",
    explanation=(
        "Subclassing Process and overriding run() is the other way to give a child its work. "
        "start() creates the new process and calls run() inside it; calling run() yourself would "
        "execute it in the current process, with the current pid, and nothing would run in "
        "parallel. Each child gets a name (Process-1, Process-2, ...) that it prints, so the "
        "output shows which object ran in which pid."
    ),
    predict="If you called p.run() instead of p.start(), which pid would print the lines?",
    main=main,
    analyze=analyze,
    params=(
        Param("processes", "int", 2, min=1, max=8, help="how many MyProcess objects to start"),
        Param("count", "int", 5, min=1, max=1000, help="numbers each process prints"),
        Param("delay", "float", 0.0, min=0.0, max=2.0, unit="s",
              help="pause after each print (makes the run long enough to watch)"),
        Param("call_run", "bool", False,
              help="call p.run() instead of p.start(): see which pid prints then"),
        start_method_param(),
    ),
)
