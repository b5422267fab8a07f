"""§12: a module global incremented in children: the parent's copy never changes."""
import multiprocessing
import os
from multiprocessing import Process, Queue, Value

counter = 0  # a module global: every process has a copy of its own


def add_to_global(times, report):
    global counter
    for _ in range(times):
        counter += 1
    print(f"child {os.getpid()}: counter = {counter}")
    report.put(counter)


def add_to_value(times, total, report):
    for _ in range(times):
        with total.get_lock():
            total.value += 1
    print(f"child {os.getpid()}: total.value = {total.value}")
    report.put(total.value)


def main(ctx, fixed=False, processes=3, times=1000, start_method="fork"):
    report = Queue()
    total = Value("i", 0)  # the fix: one integer in shared memory, with its lock
    if fixed:
        children = [Process(target=add_to_value, args=(times, total, report))
                    for _ in range(processes)]
    else:
        children = [Process(target=add_to_global, args=(times, report))
                    for _ in range(processes)]
    for p in children:
        p.start()
    child_values = [report.get() for _ in children]  # what each child saw at its end
    for p in children:
        p.join()
    parent_value = total.value if fixed else counter
    print(f"parent: {'total.value' if fixed else 'counter'} = {parent_value}")

    method = multiprocessing.get_start_method()
    expected = processes * times
    ctx.finding("start_method", method,
                f"The children were started with {method}: "
                + ("each began from a copy of the parent's memory, counter included."
                   if method == "fork" else
                   "each imported this module again, so its counter began at the line "
                   "counter = 0."))
    ctx.finding("child_values", child_values,
                f"Each of the {processes} children ended with "
                + ("the shared total it saw: " if fixed else "its own counter at ")
                + ", ".join(f"{v:,}" for v in child_values) + ".")
    ctx.finding("parent_value", parent_value,
                f"The parent's {'total.value' if fixed else 'counter'} is {parent_value:,} "
                f"after {processes} × {times:,} increments in the children"
                + (": they all wrote the same shared integer." if parent_value == expected
                   and fixed else
                   ": the children changed their own copies, never the parent's."
                   if not fixed else "."), headline=True)
    return {"parent_value": parent_value, "child_values": child_values}


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402

LESSON = Lesson(
    id="globals-not-shared", title="Globals are not shared", section="12",
    section_title="When it goes wrong", order=4,
    summary="counter += 1 on a module global in children: the parent still sees 0.",
    explanation=(
        "A child process has memory of its own. Under fork it starts from a snapshot of the "
        "parent's memory, so a module global has the parent's value at the moment of the "
        "fork; under spawn and forkserver the child imports the module again and the global "
        "starts from its line in the source. Either way each child then increments its own "
        "copy, and the parent's never moves: nothing is sent back unless you send it. The fix "
        "is to share on purpose: a Value lives in shared memory that every process maps (with "
        "its lock held around each += 1), or each child sends its result back through a "
        "Queue, as the children here also do to show what they saw."
    ),
    predict="3 children each add 1 to a module global 1000 times. What does the parent print "
            "afterwards?",
    main=main,
    params=(
        Param("fixed", "bool", False,
              help="count in a shared Value instead of a module global (the documented fix)"),
        Param("processes", "int", 3, min=1, max=8, help="children incrementing"),
        Param("times", "int", 1000, min=1, max=1_000_000, help="increments per child"),
        start_method_param(),
    ),
)
