# §8 of the tutorial shows only `Process(target=print_numbers, daemon=True)`; completed here with
# the §3 worker and a non-daemon sibling, so the daemon's end at the main's exit is visible.
import time
from multiprocessing import Process

def print_numbers():
    for i in range(1, 6):
        print(f"Number: {i}")
        time.sleep(0.2)

if __name__ == "__main__":
    d = Process(target=print_numbers, daemon=True)
    d.start()
    n = Process(target=print_numbers)
    n.start()
    time.sleep(0.3)
    print("main done")
