"""§6: a child changes a shared Value and Array in place."""
from multiprocessing import Array, Process, Value


def modify_data(n, arr):
    n.value += 10
    for i in range(len(arr)):
        arr[i] += 1


def main(ctx, length=3, start_method="fork"):
    num = Value('i', 5)
    arr = Array('i', list(range(1, length + 1)))
    before = num.value, arr[:]

    p = Process(target=modify_data, args=(num, arr))
    p.start()
    p.join()

    print(num.value)  # 15
    print(arr[:])     # [2, 3, 4]
    ctx.finding("num", num.value, f"The parent reads num.value = {num.value}: the child's "
                                  f"+10 landed in memory both processes map.", headline=True)
    ctx.finding("before_after", f"{before[0]} -> {num.value}",
                f"Read by the parent before start() and after join(): num {before[0]} → "
                f"{num.value}, arr {before[1][:8]} → {arr[:8]}"
                f"{' (its first 8 cells)' if length > 8 else ''}.")
    return {"num": num.value, "arr": arr[:]}


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402


LESSON = Lesson(
    id="shared-memory", title="Value and Array", section="6", section_title="Shared memory",
    order=1,
    summary="modify_data(num, arr): the child's writes are seen by the parent.",
    explanation=(
        "Value('i', 5) and Array('i', [1, 2, 3]) are not ordinary Python objects: they are C "
        "integers in a block of shared memory that the child maps too, so nothing is pickled "
        "and sent back. When the child writes arr[i] += 1 it changes the very bytes the parent "
        "reads after join(), which is why the parent prints 15 and [2, 3, 4]. Each one carries "
        "a lock, but n.value += 10 is a read followed by a write, and the lock is taken for "
        "each half separately: the race-condition lesson shows what that costs."
    ),
    predict="The child adds 10 to num. Will the parent see 5 or 15, and why?",
    main=main,
    params=(
        Param("length", "int", 3, min=1, max=1000, help="cells in the Array: 1..length"),
        start_method_param(),
    ),
)
