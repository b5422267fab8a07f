from multiprocessing import Process, Value, Array

def modify_data(n, arr):
    n.value += 10
    for i in range(len(arr)):
        arr[i] += 1

if __name__ == "__main__":
    num = Value('i', 5)
    arr = Array('i', [1, 2, 3])

    p = Process(target=modify_data, args=(num, arr))
    p.start()
    p.join()

    print(num.value)  # 15
    print(arr[:])     # [2, 3, 4]
