"""Concurrent separations: do two at once take the time of one?

With one thread per inference, times `2track_vocal` on SONG (a 3-minute song) alone and two at
once, in the server (`stemscribe --threads 1 serve --max-jobs 2`: two sessions per model) and in
Python (`Engine(threads=1, sessions=N)` shared by two threads, N = 1 and 2), and prints the
ratios. Then the memory: RSS of a separation-only engine with 1, 2 and 3 sessions (what each
extra session costs), and the peak RSS of a process separating LONG_SONG (a 10-minute song)
twice at once with two sessions.

    python scripts/eval/concurrency.py SONG LONG_SONG [--runs 3]

Needs the release binary (cargo build --release -p stemscribe-cli) and the Python package
built in release (cd python && maturin develop --release) in the running interpreter.
"""

import argparse
import base64
import http.client
import json
import multiprocessing
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def invoke(port, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/api/v1/invoke", body, {"Content-Type": "application/json"})
    answer = json.loads(conn.getresponse().read())
    conn.close()
    assert answer["status_code"] == 20000000, answer.get("message")


def at_once(count, work):
    """Wall time of `count` calls of `work` started together."""
    threads = [threading.Thread(target=work) for _ in range(count)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def median_of(runs, measure):
    return statistics.median(measure() for _ in range(runs))


def server(song, runs):
    port = free_port()
    process = subprocess.Popen([str(ROOT / "target" / "release" / "stemscribe"), "--quiet", "--threads", "1",
                                "serve", "--listen", f"127.0.0.1:{port}", "--max-jobs", "2"])
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        payload = json.dumps({"model": "2track_vocal", "extra": {"output_format": "wav"}})
        body = json.dumps({"namespace": "MusicSourceSeparate", "payload": payload,
                           "data": base64.b64encode(song.read_bytes()).decode()}).encode()
        invoke(port, body)  # warm-up
        one = median_of(runs, lambda: at_once(1, lambda: invoke(port, body)))
        two = median_of(runs, lambda: at_once(2, lambda: invoke(port, body)))
    finally:
        process.terminate()
        process.wait()
    print(f"server, --threads 1 --max-jobs 2: one {one:.2f} s, two at once {two:.2f} s: {two / one:.2f}x")


def python(song, runs):
    import stemscribe

    for sessions in (1, 2):
        engine = stemscribe.Engine(threads=1, sessions=sessions, separation_only=True)
        work = lambda: engine.separate(str(song), model="2track_vocal")  # noqa: E731
        work()
        one = median_of(runs, lambda: at_once(1, work))
        two = median_of(runs, lambda: at_once(2, work))
        print(f"python, threads=1 sessions={sessions}: one {one:.2f} s, two at once {two:.2f} s: "
              f"{two / one:.2f}x")
        del engine


def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def loaded_rss(sessions, queue):
    import stemscribe

    engine = stemscribe.Engine(threads=1, sessions=sessions, separation_only=True)
    queue.put(rss_mb())
    del engine


def two_long(song, queue):
    import stemscribe

    engine = stemscribe.Engine(threads=1, sessions=2, separation_only=True)
    at_once(2, lambda: engine.separate(str(song), model="2track_vocal"))
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def in_child(target, *args):
    """`target(*args, queue)` in a fresh interpreter (spawned: ONNX Runtime does not survive a
    fork), and what it put on the queue."""
    spawn = multiprocessing.get_context("spawn")
    queue = spawn.Queue()
    child = spawn.Process(target=target, args=(*args, queue))
    child.start()
    value = queue.get()
    child.join()
    return value


def memory(long_song):
    loaded = {n: in_child(loaded_rss, n) for n in (1, 2, 3)}
    print("RSS of a loaded separation-only engine: " +
          ", ".join(f"{n} session(s) {mb:.0f} MB" for n, mb in loaded.items()) +
          f"; each extra session about {(loaded[3] - loaded[1]) / 2:.0f} MB")
    peak = in_child(two_long, long_song)
    print(f"peak RSS, two 10-minute songs at once (sessions=2): {peak:.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("song", type=Path)
    parser.add_argument("long_song", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{multiprocessing.cpu_count()} cores")
    server(args.song, args.runs)
    python(args.song, args.runs)
    memory(args.long_song)


if __name__ == "__main__":
    sys.exit(main())
