from multiprocessing import Process

class MyProcess(Process):
    def run(self):
        for i in range(1, 6):
            print(f"Process {self.name}: {i}")

if __name__ == "__main__":
    p1 = MyProcess()
    p2 = MyProcess()

    p1.start()
    p2.start()

    p1.join()
    p2.join()
