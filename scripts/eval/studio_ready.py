"""How soon the studio is usable after a job is done: drops SONG on the page of a running
`stemscribe serve` (in headless Chromium, as tests/studio does), waits for the job, and prints
the milliseconds from the page opening the result to its waveforms drawn and playback ready,
over RUNS runs. The page polls a running job every 250 ms, which adds at most that.

    python scripts/eval/studio_ready.py SONG [--server URL] [--runs 3] [--stems-only]

With no --server it starts target/release/stemscribe serve on a free port.
"""

import argparse
import base64
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "studio"))
import test_studio as studio  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("song", type=Path)
    parser.add_argument("--server")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stems-only", action="store_true", help="no melody: the last stem is read after the job ends")
    args = parser.parse_args()
    server = None
    url = args.server
    if url is None:
        port = studio.free_port()
        server = subprocess.Popen(
            [str(ROOT / "target" / "release" / "stemscribe"), "serve", "--listen", f"127.0.0.1:{port}"],
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/"
        studio.wait_for(lambda: _up(url), 120, "the server")
    port = studio.free_port()
    driver = subprocess.Popen([studio.DRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    studio.wait_for(lambda: _up(base + "/status", json_ready=True), 30, "chromedriver")
    browser = studio.Browser(base)
    data = base64.b64encode(args.song.read_bytes()).decode()
    times = []
    try:
        for _ in range(args.runs):
            browser.go(url)
            browser.js("for (const b of document.querySelectorAll('#queue .remove')) b.click();")
            time.sleep(0.5)
            browser.js("document.getElementById('midi').checked = arguments[0]", not args.stems_only)
            browser.js(studio.DROP, args.song.name, data)
            studio.wait_for(lambda: browser.js("return studio.readyMs !== null"), 900, "the result")
            ready = browser.js("return studio.readyMs")
            seconds = browser.js("return studio.duration()")
            times.append(ready)
            print(f"{seconds:.1f} s result: usable {ready:.0f} ms after the page opened it")
    finally:
        browser.quit()
        driver.terminate()
        if server:
            server.terminate()
    print(json.dumps({"runs": len(times), "worst_ms": max(times), "mean_ms": sum(times) / len(times)}))


def _up(url, json_ready=False):
    try:
        body = studio.http(url if json_ready else url + "healthz")
        return json.loads(body)["value"]["ready"] if json_ready else body == b"ok"
    except OSError:
        return False


if __name__ == "__main__":
    main()
