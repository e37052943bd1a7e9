"""CPython programs in known states for bench/verdicts.js and test/verdicts-*.test.ts.

    python3 programs.py lock-order      two workers compute for 3 s, then take two locks in
                                        opposite order and deadlock; main joins them
    python3 programs.py pool-idle       a ThreadPoolExecutor of 4 workers, each has run a task
                                        and waits for the next; main waits for a stop event
    python3 programs.py silent-broker   accepts TCP connections on 127.0.0.1:0, never sends
    python3 programs.py consumer PORT   a queue consumer: connects to PORT, subscribes, then
                                        blocks in a long-poll recv on its socket
    python3 programs.py frozen-http     a single-threaded http.server on 127.0.0.1:0 whose
                                        handler for /sleep sleeps 40 s (the loop answers nothing)
    python3 programs.py pipe-deadlock   starts a child that writes 1 MB to a stdout pipe and
                                        waits for it without reading (the child blocks in write,
                                        the parent in wait4)

Each mode prints one line, "ready pid=N key=value...", once it is in place (lock-order: at
start, 3 s before it deadlocks).
"""
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def ready(extra=""):
    print(f"ready pid={os.getpid()}{extra}", flush=True)


def lock_order():
    first, second = threading.Lock(), threading.Lock()

    def worker(one, other):
        end = time.monotonic() + 3
        total = 0
        while time.monotonic() < end:
            total += sum(range(1000))
        with one:
            time.sleep(0.2)
            with other:
                print("unreachable", total)

    workers = [threading.Thread(target=worker, args=(first, second)), threading.Thread(target=worker, args=(second, first))]
    for w in workers:
        w.start()
    ready(f" deadlock-after=3")
    for w in workers:
        w.join()


def pool_idle():
    pool = ThreadPoolExecutor(max_workers=4)
    # Four tasks that wait for each other, so each runs on a thread of its own.
    barrier = threading.Barrier(4)
    for f in [pool.submit(barrier.wait) for _ in range(4)]:
        f.result()
    ready(" workers=4")
    threading.Event().wait()


def silent_broker():
    server = socket.create_server(("127.0.0.1", 0))
    ready(f" port={server.getsockname()[1]}")
    clients = []
    while True:
        client, _ = server.accept()
        clients.append(client)


def consumer(port):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"SUBSCRIBE jobs\n")
    ready("")
    while True:
        message = sock.recv(4096)
        if not message:
            return


def frozen_http():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/sleep":
                time.sleep(40)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    ready(f" port={server.server_address[1]}")
    server.serve_forever()


def pipe_deadlock():
    # The child writes with os.write in a loop, as careful writers do: a write that a signal
    # (or a debugger's ptrace stop) cuts short is resumed, so the deadlock holds.
    writer = "import os\nleft = 1 << 20\nwhile left > 0:\n    left -= os.write(1, b'x' * left)\n"
    child = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE)
    ready(f" child={child.pid}")
    child.wait()


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "lock-order":
        lock_order()
    elif mode == "pool-idle":
        pool_idle()
    elif mode == "silent-broker":
        silent_broker()
    elif mode == "consumer" and len(sys.argv) > 2:
        consumer(int(sys.argv[2]))
    elif mode == "frozen-http":
        frozen_http()
    elif mode == "pipe-deadlock":
        pipe_deadlock()
    else:
        print("usage: programs.py lock-order | pool-idle | silent-broker | consumer PORT | frozen-http | pipe-deadlock", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
