from multiprocessing import Process, Queue

def square(n, q):
    q.put(n * n)

if __name__ == "__main__":
    q = Queue()
    p = Process(target=square, args=(5, q))
    p.start()
    p.join()
    print(q.get())  # 25
