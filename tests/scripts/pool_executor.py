# Not in the tutorial: §7's pool with concurrent.futures, which mpdash traces like Pool.
from concurrent.futures import ProcessPoolExecutor

def square(n):
    return n * n

if __name__ == "__main__":
    with ProcessPoolExecutor(max_workers=2) as ex:
        results = list(ex.map(square, [1, 2, 3, 4, 5]))
    print(results)  # [1, 4, 9, 16, 25]
