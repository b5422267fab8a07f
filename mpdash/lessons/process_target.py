"""§3, method 1: a Process runs a target function."""
import time
from multiprocessing import Process


def print_numbers(count=5, delay=0.0):
    for i in range(1, count + 1):
        print(f"Number: {i}")
        time.sleep(delay)


def main(ctx, processes=2, count=5, delay=0.0, call_run=False, start_method="fork"):
    workers = [Process(target=print_numbers, args=(count, delay)) for _ in range(processes)]

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
    return who_printed(run, 'Number: 1', headline='first')

LESSON = Lesson(
    id="process-target", title="Process with a target", section="3",
    section_title="Python's multiprocessing module", order=1,
    summary="Two processes run the same function; their prints interleave.",
    explanation=(
        "Process(target=print_numbers) describes a child process; start() asks the operating "
        "system to create it, and the child then calls print_numbers on its own. Each child has "
        "its own pid and its own memory, so the two loops really run side by side. join() only "
        "waits for a child to end: it does not decide who prints first, which is why the lines "
        "of the two processes interleave differently from one run to the next."
    ),
    predict="Which process prints 'Number: 1' first? Run it five times and compare.",
    main=main,
    analyze=analyze,
    params=(
        Param("processes", "int", 2, min=1, max=8, help="how many Process objects to start"),
        Param("count", "int", 5, min=1, max=1000, help="numbers each process prints"),
        Param("delay", "float", 0.0, min=0.0, max=2.0, unit="s",
              help="pause after each print (makes the run long enough to watch)"),
        Param("call_run", "bool", False,
              help="call p.run() instead of p.start(): see which pid prints then"),
        start_method_param(),
    ),
)
