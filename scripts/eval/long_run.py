#!/usr/bin/env python3
"""Drives `stemscribe serve` for a long run and watches its memory and open files.

Starts the release binary on a free loopback port (or drives --address), then for --minutes
keeps --clients connections busy with a mix of requests:
  - valid separations (MusicSourceSeparate, 2track_vocal and bs_4track_acc) and transcriptions
    (MIDI) of the test clips, in both request forms (JSON body, query string);
  - jobs through the jobs API (separation and melody of a clip: submit, poll, fetch every
    file, delete, check it is gone);
  - malformed requests (not JSON, a bad model, bad base64, a wrong namespace; jobs with a bad
    model or no body);
  - aborted uploads (headers and part of a body, then the client hangs up), to both APIs.
Every valid response is checked against the first one for the same request: the same audio
or notes, bit for bit, so a response mixed up with another request's shows (for a job: every
file it made). Every task_id and job id must be new. When it started the server, it also checks
at the end that deleted jobs left no file in its job folder. Every 10 s it samples the server's RSS and open file descriptors
(/proc/PID/status, /proc/PID/fd) and prints both series, then a verdict: requests by kind
and outcome, and whether RSS or descriptors grew after warm-up (the first quarter of the run).

usage: scripts/eval/long_run.py [--minutes 10] [--clients 3] [--address HOST:PORT --pid PID]
Exit status 1 when a valid request failed, a response was wrong, or a series grew.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
SAMPLE_EVERY = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(address: str, method: str, target: str, body: bytes | None = None,
         timeout: float = 300.0) -> tuple[int, bytes]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, target, body, {"Content-Type": "application/json"} if body else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post(address: str, target: str, body: bytes, timeout: float = 300.0):
    status, raw = call(address, "POST", target, body, timeout)
    return status, json.loads(raw)


JOB_QUERY = "/api/v1/jobs?separate=2track_vocal&midi=true"


def run_job(address: str, audio: bytes, tally: "Tally") -> str | None:
    """Submits, polls, fetches and deletes one job; the digest of its files, or None after
    recording a problem."""
    status, raw = call(address, "POST", JOB_QUERY, audio)
    answer = json.loads(raw)
    if status != 202:
        tally.problem(f"job: HTTP {status} {answer.get('status_code')} {answer.get('message')}")
        return None
    job = answer["id"]
    with tally.lock:
        if job in tally.task_ids:
            tally.problems.append(f"job id {job} reused")
        tally.task_ids.add(job)
    while True:
        status, raw = call(address, "GET", f"/api/v1/jobs/{job}")
        view = json.loads(raw)
        if view.get("state") in ("done", "failed"):
            break
        time.sleep(0.2)
    if view["state"] != "done" or view.get("error"):
        tally.problem(f"job {job}: {view.get('state')} {view.get('error')}")
        return None
    hasher = hashlib.sha256()
    for file in view["files"]:
        status, raw = call(address, "GET", file["url"])
        if status != 200:
            tally.problem(f"job {job}: {file['name']} HTTP {status}")
            return None
        hasher.update(file["name"].encode() + b"|" + hashlib.sha256(raw).digest())
    status, _ = call(address, "DELETE", f"/api/v1/jobs/{job}")
    gone, _ = call(address, "GET", f"/api/v1/jobs/{job}")
    if status != 204 or gone != 404:
        tally.problem(f"job {job}: DELETE answered {status}, then GET {gone}")
        return None
    return hasher.hexdigest()


def valid_requests() -> list[tuple[str, str, bytes]]:
    """(name, target, body) of the valid requests, in both request forms."""
    rock = base64.b64encode((DATA / "rock_mix.wav").read_bytes()).decode()
    voice = base64.b64encode((DATA / "vocadito_1.flac").read_bytes()).decode()
    out = []
    for model in ["2track_vocal", "bs_4track_acc"]:
        payload = json.dumps({"model": model})
        body = {"namespace": "MusicSourceSeparate", "payload": payload, "data": rock}
        out.append((f"separate {model} (body)", "/api/v1/invoke", json.dumps(body).encode()))
    midi = {"payload": json.dumps({"extra": {"midi": False}}), "data": voice}
    out.append(("midi (query)", "/api/v1/invoke?version=v4&namespace=MIDI", json.dumps(midi).encode()))
    return out


MALFORMED = [
    ("not json", b"{this is not json"),
    ("bad model", json.dumps({"namespace": "MusicSourceSeparate", "payload": json.dumps({"model": "9track"}), "data": "AAAA"}).encode()),
    ("bad base64", json.dumps({"namespace": "MIDI", "payload": "{}", "data": "%%%%"}).encode()),
    ("wrong namespace", json.dumps({"namespace": "Nope", "payload": "{}", "data": "AAAA"}).encode()),
]


MALFORMED_JOBS = [
    ("job with a bad model", "/api/v1/jobs?separate=9track", b"RIFF"),
    ("job without a body", JOB_QUERY, b""),
    ("job asking for nothing", "/api/v1/jobs?midi=false", b"RIFF"),
]


def aborted_upload(address: str, jobs: bool) -> None:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        if jobs:
            s.sendall(f"POST {JOB_QUERY} HTTP/1.1\r\nHost: x\r\n".encode()
                      + b"Content-Length: 3000000\r\n\r\nRIFF" + b"\0" * 200_000)
        else:
            s.sendall(b"POST /api/v1/invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 3000000\r\n\r\n{\"namespace\": \"MIDI\", \"data\": \"" + b"A" * 200_000)


def digest(answer: dict) -> str:
    """What must not change between repeats of one request: the data, and the payload's notes."""
    payload = answer.get("payload") or ""
    try:
        payload = json.loads(payload)
        payload.pop("task_id", None)
        payload = json.dumps(payload, sort_keys=True)
    except (ValueError, AttributeError):
        pass
    return hashlib.sha256((answer.get("data", "") + "|" + payload).encode()).hexdigest()


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter = collections.Counter()
        self.expected: dict[str, str] = {}
        self.task_ids: set[str] = set()
        self.problems: list[str] = []

    def count(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)
            self.counts["problems"] += 1

    def check_task_id(self, answer: dict, name: str) -> None:
        task = answer.get("task_id")
        with self.lock:
            if not task or task in self.task_ids:
                self.problems.append(f"{name}: task_id {task!r} missing or reused")
            self.task_ids.add(task)


def client(address: str, deadline: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    valid = valid_requests()
    song = (DATA / "rock_mix.wav").read_bytes()
    while time.monotonic() < deadline:
        kind = rng.random()
        try:
            if kind < 0.15:
                seen = run_job(address, song, tally)
                if seen is None:
                    continue
                with tally.lock:
                    first = tally.expected.setdefault("job", seen)
                if first != seen:
                    tally.problem("job: its files differ from the first job's")
                tally.count("valid: job (2track_vocal + midi)")
            elif kind < 0.2:
                name, target, body = rng.choice(MALFORMED_JOBS)
                status, answer = post(address, target, body)
                if status < 400 or status >= 500 or not answer.get("status_code"):
                    tally.problem(f"malformed {name}: HTTP {status} {answer}")
                    continue
                tally.count(f"refused: {name}")
            elif kind < 0.6:
                name, target, body = rng.choice(valid)
                status, answer = post(address, target, body)
                tally.check_task_id(answer, name)
                if status != 200 or answer.get("status_code") != 20000000:
                    tally.problem(f"{name}: HTTP {status} {answer.get('status_code')} {answer.get('message')}")
                    continue
                seen = digest(answer)
                with tally.lock:
                    first = tally.expected.setdefault(name, seen)
                if first != seen:
                    tally.problem(f"{name}: a response differs from the first one")
                tally.count(f"valid: {name}")
            elif kind < 0.85:
                name, body = rng.choice(MALFORMED)
                status, answer = post(address, "/api/v1/invoke", body)
                if status < 400 or status >= 500 or not answer.get("status_code"):
                    tally.problem(f"malformed {name}: HTTP {status} {answer}")
                    continue
                tally.count(f"refused: {name}")
            else:
                jobs = rng.random() < 0.5
                aborted_upload(address, jobs)
                tally.count("aborted upload" + (" (job)" if jobs else ""))
        except (OSError, http.client.HTTPException, ValueError) as error:
            tally.problem(f"client error: {error!r}")


def sample(pid: int) -> tuple[float, int]:
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return rss_kb / 1024.0, len(os.listdir(f"/proc/{pid}/fd"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--address", help="drive this server instead of starting one (needs --pid)")
    parser.add_argument("--pid", type=int, help="the server's process, for sampling")
    args = parser.parse_args()

    server = None
    if args.address:
        if not args.pid:
            parser.error("--address needs --pid")
        address, pid = args.address, args.pid
    else:
        binary = ROOT / "target" / "release" / "stemscribe"
        if not binary.exists():
            subprocess.run(["cargo", "build", "--release", "-p", "stemscribe-cli"], cwd=ROOT, check=True)
        address = f"127.0.0.1:{free_port()}"
        job_dir = Path(tempfile.mkdtemp(prefix="long-run-jobs-"))
        server = subprocess.Popen([str(binary), "--quiet", "--device", "cpu", "serve", "--listen", address,
                                   "--max-jobs", "2", "--job-dir", str(job_dir)])
        pid = server.pid
        for _ in range(300):
            try:
                host, port = address.rsplit(":", 1)
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)

    tally = Tally()
    start = time.monotonic()
    deadline = start + args.minutes * 60.0
    threads = [threading.Thread(target=client, args=(address, deadline, tally, seed), daemon=True)
               for seed in range(args.clients)]
    for thread in threads:
        thread.start()
    series = []
    print("| s | RSS MB | open fds | requests so far |\n|---|---|---|---|", flush=True)
    while time.monotonic() < deadline:
        time.sleep(min(SAMPLE_EVERY, max(0.0, deadline - time.monotonic())))
        rss, fds = sample(pid)
        done = sum(v for k, v in tally.counts.items() if k != "problems")
        elapsed = time.monotonic() - start
        series.append((elapsed, rss, fds))
        print(f"| {elapsed:.0f} | {rss:.0f} | {fds} | {done} |", flush=True)
    for thread in threads:
        thread.join(timeout=330)
    time.sleep(SAMPLE_EVERY)
    rss, fds = sample(pid)
    print(f"| idle, {SAMPLE_EVERY:.0f} s after the last request | {rss:.0f} | {fds} | |")
    if server is not None:
        left = [p for p in job_dir.rglob("*") if p.is_file()]
        print(f"files left in the job folder: {len(left)}")
        if left:
            tally.problem(f"{len(left)} files left behind by deleted jobs, e.g. {left[0]}")
        server.terminate()
        server.wait(timeout=60)

    print()
    for key, value in sorted(tally.counts.items()):
        print(f"{key}: {value}")
    for text in tally.problems[:20]:
        print("problem:", text)
    warm = [s for s in series if s[0] >= args.minutes * 60.0 / 4]
    grew = False
    if len(warm) >= 4:
        half = len(warm) // 2
        first = warm[:half]
        last = warm[half:]
        rss_first = max(s[1] for s in first)
        rss_last = max(s[1] for s in last)
        fds_first = max(s[2] for s in first)
        fds_last = max(s[2] for s in last)
        print(f"after warm-up: peak RSS {rss_first:.0f} MB then {rss_last:.0f} MB; "
              f"peak open fds {fds_first} then {fds_last}")
        # Growth: the second half's peak above the first half's by more than 10% (RSS) or by
        # more than the clients could hold open at once (descriptors).
        grew = rss_last > rss_first * 1.10 or fds_last > fds_first + 2 * args.clients
    print("verdict:", "GREW" if grew else "steady", "|",
          "problems" if tally.problems else "every valid request succeeded and matched")
    return 1 if grew or tally.problems else 0


if __name__ == "__main__":
    sys.exit(main())
