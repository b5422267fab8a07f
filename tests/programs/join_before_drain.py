"""The deadlock the multiprocessing docs warn about: join a child before draining its Queue.

The child puts more than a pipe holds; its queue's feeder thread blocks writing the pipe, so the
child cannot exit (it joins that thread), and the main waits in join() for ever.
"""
import multiprocessing


def produce(queue):
    queue.put(b"x" * 1_000_000)


if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    queue = multiprocessing.Queue()
    child = multiprocessing.Process(target=produce, args=(queue,), name="producer")
    child.start()
    child.join()          # never returns: the queue is drained after it
    queue.get()
