"""§5b: a child sends a list through a Pipe; the parent receives it."""
import statistics
import time
from multiprocessing import Pipe, Process


def send_data(conn):
    conn.send([1, 2, 3])
    conn.close()


def echo(conn):
    while (msg := conn.recv()) is not None:
        conn.send(msg)
    conn.close()


def main(ctx, mode="send", round_trips=200, start_method="fork"):
    parent_conn, child_conn = Pipe()
    if mode == "send":
        # The tutorial's example, line for line (plus a stopwatch around recv()).
        p = Process(target=send_data, args=(child_conn,))
        p.start()
        waited = time.perf_counter()
        result = parent_conn.recv()
        waited = time.perf_counter() - waited
        print(result)  # [1, 2, 3]
        p.join()
        ctx.finding("recv_wait_ms", round(waited * 1000, 2),
                    f"recv() blocked the parent for {waited * 1000:.1f} ms, until the new "
                    f"child had started and sent the list.", unit="ms", headline=True)
        return result

    # Ping-pong over the duplex pipe: the parent sends, the child echoes back.
    p = Process(target=echo, args=(child_conn,))
    p.start()
    for i in range(3):  # a few traced round trips, for the message panel
        parent_conn.send(i)
        parent_conn.recv()
    parent_conn.send(None)
    p.join()

    with ctx.untraced("round-trip timing"):  # a fresh pair, untraced on both sides
        parent_conn, child_conn = Pipe()
        p = Process(target=echo, args=(child_conn,))
        p.start()
        times, echoed = [], 0
        for i in range(round_trips):
            t0 = time.perf_counter()
            parent_conn.send(i)
            reply = parent_conn.recv()
            times.append(time.perf_counter() - t0)
            echoed += reply == i
        parent_conn.send(None)
        p.join()
    median = statistics.median(times) * 1e6
    ctx.finding("round_trip_us", round(median, 1),
                f"Median round trip parent → child → parent over {round_trips} messages: "
                f"{median:.0f} µs (fastest {min(times) * 1e6:.0f} µs), measured untraced.",
                unit="µs", headline=True)
    print(f"{echoed} of {round_trips} round trips echoed, median {median:.0f} µs")
    return {"echoed": echoed, "median_us": round(median, 1)}


from mpdash.lessons import Lesson, Param, start_method_param  # noqa: E402

LESSON = Lesson(
    id="pipe", title="Pipe", section="5", section_title="Inter-process communication", order=2,
    summary="send_data(conn): a child sends [1, 2, 3] through a Pipe.",
    explanation=(
        "Pipe() returns two connected ends; each process keeps one and the object sent into one "
        "end comes out of the other, pickled on the way. It is duplex by default, so both ends "
        "can send and receive, but only two parties should use it: two processes reading the "
        "same end would steal each other's messages. recv() blocks until something arrives, "
        "which is why the parent waits here for a child that has only just been created. The "
        "ping-pong variant sends a number back and forth to measure what one round trip through "
        "the kernel costs."
    ),
    predict="The parent calls recv() right after start(). What does it do until the child sends?",
    main=main,
    params=(
        Param("mode", "choice", "send", choices=("send", "ping-pong"),
              help="send: the tutorial's one message; ping-pong: measure round trips"),
        Param("round_trips", "int", 200, min=1, max=100000, help="ping-pong messages to time"),
        start_method_param(),
    ),
)
