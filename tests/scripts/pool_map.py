from multiprocessing import Pool

def square(n):
    return n * n

if __name__ == "__main__":
    with Pool(3) as p:
        results = p.map(square, [1, 2, 3, 4, 5])
    print(results)  # [1, 4, 9, 16, 25]
