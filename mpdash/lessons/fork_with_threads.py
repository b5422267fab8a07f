"""§12: fork while another thread holds a lock: the child's copy of the lock is never released."""
import threading
import time
import warnings
from multiprocessing import get_context

GIVE_UP_S = 6.0  # how long the main waits for the child before it calls the hang a hang

lock = threading.Lock()  # a module global, like a logging handler's or a cache's lock


def hold_lock(held, release):
    with lock:
        held.set()
        release.wait()


def take_lock():
    with lock:  # in a forked child this copy of the lock was taken by a thread that is not here
        print("child: got the lock")


def main(ctx, fixed=False):
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_lock, args=(held, release), name="holder")
    holder.start()
    held.wait()  # another thread of this process now holds the lock

    method = "forkserver" if fixed else "fork"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        child = get_context(method).Process(target=take_lock)
        child.start()
    release.set()  # the parent's lock is free again at once...
    holder.join()

    started = time.perf_counter()
    child.join(timeout=GIVE_UP_S)  # ...but is the child's?
    waited = time.perf_counter() - started
    hung = child.is_alive()
    if hung:
        print(f"the {method} child is still waiting for the lock after {waited:.1f} s")
        child.terminate()  # end the hang ourselves
        child.join()
    said = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    warning = said[0] if said else None

    ctx.finding("child_hung", hung,
                f"The {method} child waited {waited:.1f} s for a lock that the parent "
                f"released right after the fork, and never got it: its copy was taken locked."
                if hung else
                f"The {method} child got the lock and exited with {child.exitcode} after "
                f"{waited:.2f} s: it started from a fresh import, with a lock nobody held.",
                headline=True)
    ctx.finding("warning", warning,
                f"Python warned when the process forked: {warning}" if warning else
                f"No DeprecationWarning from this Python (they start with 3.12)."
                if not fixed else
                f"No warning: {method} does not fork this multi-threaded process.")
    return {"start_method": method, "child_hung": hung, "exitcode": child.exitcode}


from mpdash.lessons import Lesson, Param  # noqa: E402

LESSON = Lesson(
    id="fork-with-threads", title="Fork with threads", section="12",
    section_title="When it goes wrong", order=5,
    summary="fork while another thread holds a lock: the child blocks forever acquiring it.",
    explanation=(
        "fork copies the whole memory of a process, locks included, but only the thread that "
        "called it: in the child, a lock that another thread held at that instant stays "
        "locked, and the thread that would have released it does not exist there. The child's "
        "first acquire waits forever, while in the parent the same lock was released a moment "
        "later. Real programs hit this through locks they never see, in logging, in a "
        "library's cache or in the allocator, which is why Python 3.12 warns with a "
        "DeprecationWarning whenever a multi-threaded process forks, and why 3.14 made "
        "forkserver the default on Linux. The fix is forkserver (or spawn): the child starts "
        "from a fresh import, where the module's lock is new and free. The stacks show the "
        "child waiting in take_lock; the lesson gives up after 6 s and ends it."
    ),
    predict="A thread holds a lock; the main forks a child that takes the same lock, and "
            "releases it right after the fork. Does the child get the lock?",
    main=main,
    params=(
        Param("fixed", "bool", False,
              help="start the child with forkserver instead of fork (the documented fix)"),
    ),
)
