"""The studio end to end, in Debian's headless Chromium driven over WebDriver.

`stemscribe serve` on the real models; the test drops a clip on the page, waits for its stems
and melody, plays, mutes, reads the piano roll's pixels, and checks that every download equals
what the command line writes for the same clip. Run by scripts/test/studio.sh, which builds the
binary and sets STEMSCRIBE_BIN; STUDIO_SCREENSHOTS=DIR also saves screenshots there.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "tests" / "data" / "rock_mix.wav"
BIN = os.environ.get("STEMSCRIBE_BIN", str(ROOT / "target" / "debug" / "stemscribe"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, seconds, what):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.1)


def http(url, method="GET", body=None):
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


class Browser:
    """The few WebDriver commands the test needs, over plain HTTP."""

    def __init__(self, driver_url):
        self.base = driver_url
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--autoplay-policy=no-user-gesture-required",
                            "--window-size=1280,1100",
                        ],
                    },
                }
            }
        }
        reply = self.call("POST", "/session", caps)
        self.session = f"/session/{reply['sessionId']}"

    def call(self, method, path, payload=None):
        body = None if payload is None else json.dumps(payload).encode()
        try:
            raw = http(self.base + path, method, body if method != "GET" else None)
        except urllib.error.HTTPError as error:
            raise AssertionError(f"WebDriver {method} {path}: {error.read()[:2000]!r}") from error
        return json.loads(raw)["value"]

    def do(self, method, path, payload=None):
        return self.call(method, self.session + path, payload)

    def go(self, url):
        self.do("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.do("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        return self.do("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def click(self, css):
        self.do("POST", f"/element/{self.find(css)}/click", {})

    def key(self, key):
        self.do(
            "POST",
            "/actions",
            {
                "actions": [
                    {
                        "type": "key",
                        "id": "keyboard",
                        "actions": [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}],
                    }
                ]
            },
        )
        self.do("DELETE", "/actions")

    def size(self, width, height):
        self.do("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path, css=None):
        where = f"/element/{self.find(css)}/screenshot" if css else "/screenshot"
        Path(path).write_bytes(base64.b64decode(self.do("GET", where)))

    def quit(self):
        try:
            self.call("DELETE", self.session)
        except Exception:  # the browser may already be gone
            pass


def start_server(*options):
    port = free_port()
    jobs = tempfile.mkdtemp(prefix="studio-test-")
    process = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--job-dir", jobs, *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/"

    def up():
        try:
            return http(url + "healthz") == b"ok"
        except OSError:
            assert process.poll() is None, process.stderr.read().decode()
            return False

    wait_for(up, 120, "the server")
    return url, process, jobs


def stop_server(process, jobs):
    process.terminate()
    process.wait(timeout=60)
    shutil.rmtree(jobs, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    url, process, jobs = start_server()
    yield url
    stop_server(process, jobs)


@pytest.fixture(scope="module")
def browser():
    port = free_port()
    driver = subprocess.Popen([DRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return json.loads(http(base + "/status"))["value"]["ready"]
        except OSError:
            return False

    wait_for(up, 30, "chromedriver")
    browser = Browser(base)
    yield browser
    browser.quit()
    driver.terminate()
    driver.wait(timeout=30)


@pytest.fixture(scope="module")
def cli_outputs(tmp_path_factory):
    """What the command line writes for the clip: both stems (WAV and MP3) and the melody."""
    out = tmp_path_factory.mktemp("cli")
    run = lambda *args: subprocess.run([BIN, "--quiet", *args], check=True)
    run("separate", str(CLIP), "--model", "2track_vocal", "--stems", str(out / "wav"))
    run("separate", str(CLIP), "--model", "2track_vocal", "--stems", str(out / "mp3"), "--format", "mp3")
    run("midi", str(CLIP), "-o", str(out / "melody.mid"), "--json", str(out / "melody.json"))
    return out


DROP = """
const [name, data] = arguments;
const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], name, { type: "audio/wav" }));
const target = document.getElementById("drop");
for (const type of ["dragover", "drop"]) {
  target.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
}
"""

# For each note, the colour of the piano roll's pixel at the middle of the note's box; and the
# colour of a pixel in the top-left corner and under the last note's end, where no note lies.
ROLL_PIXELS = """
const canvas = document.getElementById("roll");
const g = canvas.getContext("2d");
const geo = studio.rollGeometry();
const pixel = (x, y) => Array.from(g.getImageData(Math.floor(x), Math.floor(y), 1, 1).data);
const notes = studio.notes();
return {
  width: canvas.width,
  notes: notes.map((n) => pixel((geo.x(n.start) + Math.max(geo.x(n.start) + 2, geo.x(n.end))) / 2,
                                geo.y(n.pitch) + Math.max(2, geo.row) / 2)),
  empty: [pixel(1, 1), pixel(canvas.width - 2, canvas.height - 2)],
};
"""

NOTE_RGB = [217, 72, 15]


def job_view(browser):
    return browser.js(
        "const li = document.querySelector('#queue li[data-state=\"done\"]'); return li ? li.dataset.job : null;"
    )


def test_the_studio_separates_transcribes_plays_and_offers_the_cli_files(server, browser, cli_outputs):
    shots = os.environ.get("STUDIO_SCREENSHOTS")
    browser.go(server)
    assert browser.js("return document.title") == "stemscribe studio"
    browser.js(DROP, CLIP.name, base64.b64encode(CLIP.read_bytes()).decode())
    job = wait_for(lambda: job_view(browser), 300, "the job to finish")
    wait_for(lambda: browser.js("return studio.readyMs !== null"), 30, "the result to open")
    print(f"result usable {browser.js('return studio.readyMs'):.0f} ms after it was opened")
    stems = browser.js("return [...document.querySelectorAll('#stems .stem')].map((r) => r.dataset.stem)")
    assert stems == ["vocals", "accompaniment"]

    # The piano roll shows exactly the notes of melody.json.
    melody = json.loads(http(f"{server}api/v1/jobs/{job}/files/melody.json"))
    assert melody["midiList"], "the clip is sung: the melody has notes"
    assert browser.js("return studio.notes()") == melody["midiList"]
    pixels = browser.js(ROLL_PIXELS)
    assert all(p[:3] == NOTE_RGB for p in pixels["notes"]), pixels["notes"]
    assert all(p[:3] != NOTE_RGB for p in pixels["empty"]), pixels["empty"]
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        browser.screenshot(Path(shots) / "studio-1280.png")

    # Playback advances; space pauses it; mute silences exactly its stem.
    browser.click("#play")
    wait_for(lambda: browser.js("return studio.position()") > 0.5, 10, "playback to advance")
    levels = lambda: {l["name"]: l["rms"] for l in browser.js("return studio.levels()")}
    wait_for(lambda: levels()["vocals"] > 1e-3, 5, "the vocals to sound")
    browser.click('#stems [data-stem="vocals"] .mute')
    time.sleep(0.2)
    muted = levels()
    assert muted["vocals"] == 0.0, muted
    assert muted["accompaniment"] > 1e-3, muted
    browser.click('#stems [data-stem="vocals"] .mute')
    wait_for(lambda: levels()["vocals"] > 1e-3, 5, "the vocals to sound again")
    browser.js("document.activeElement.blur()")
    browser.key("\ue00d")  # space
    paused_at = browser.js("return studio.position()")
    time.sleep(0.4)
    assert browser.js("return studio.position()") == paused_at, "space paused playback"
    # Clicking the waveform seeks: the middle of the lane is the middle of the song.
    browser.js(
        "const c = document.querySelector('#stems [data-stem=\"accompaniment\"] canvas');"
        "const b = c.getBoundingClientRect();"
        "c.dispatchEvent(new MouseEvent('click', {clientX: b.left + b.width / 2, clientY: b.top + 5, bubbles: true}));"
    )
    middle = browser.js("return studio.position()")
    assert abs(middle - browser.js("return studio.duration()") / 2) < 0.05, middle
    if shots:
        browser.size(1280, 1400)
        browser.screenshot(Path(shots) / "studio-result.png", "#result")

    # Every download equals the command line's file.
    links = browser.js(
        "return [...document.querySelectorAll('#downloads a')].map((a) => [a.textContent, a.href, a.download])"
    )
    expected = {
        "vocals (WAV)": cli_outputs / "wav" / "vocals.wav",
        "vocals (MP3)": cli_outputs / "mp3" / "vocals.mp3",
        "accompaniment (WAV)": cli_outputs / "wav" / "accompaniment.wav",
        "accompaniment (MP3)": cli_outputs / "mp3" / "accompaniment.mp3",
        "melody (MIDI)": cli_outputs / "melody.mid",
        "melody (JSON)": cli_outputs / "melody.json",
    }
    assert sorted(text for text, _, _ in links) == sorted(expected)
    for text, href, _ in links:
        assert http(href) == expected[text].read_bytes(), f"{text} differs from the CLI's"

    # A narrow screen: nothing wider than the window.
    browser.size(360, 900)
    time.sleep(0.3)
    assert browser.js("return document.documentElement.scrollWidth <= window.innerWidth")
    if shots:
        browser.screenshot(Path(shots) / "studio-360.png")
    browser.size(1280, 1100)


def test_jobs_outlive_the_page_and_a_file_that_is_not_audio_is_refused_in_plain_words(server, browser):
    browser.go(server)
    wait_for(lambda: job_view(browser), 10, "the earlier job, listed again after a reload")
    browser.js(DROP, "notes.txt", base64.b64encode(b"shopping list: milk, eggs").decode())
    text = wait_for(
        lambda: browser.js(
            "const e = [...document.querySelectorAll('#queue li .error')].find((e) => !e.hidden);"
            "return e ? e.textContent : null;"
        ),
        60,
        "the refusal",
    )
    assert text == "This file could not be read as audio. Try WAV, MP3, FLAC, Ogg or M4A."
    assert "Error" not in text and "at " not in text


def test_songs_beyond_the_servers_queue_wait_on_the_page_and_all_finish(browser):
    url, process, jobs = start_server("--max-jobs", "1", "--queue", "0")
    try:
        browser.go(url)
        browser.js("document.getElementById('midi').checked = false")
        clip = base64.b64encode(CLIP.read_bytes()).decode()
        for name in ["one.wav", "two.wav", "three.wav"]:
            browser.js(DROP, name, clip)
        wait_for(
            lambda: browser.js("return document.querySelectorAll('#queue li[data-state=\"done\"]').length") == 3,
            300,
            "three songs through a server with one place",
        )
        assert browser.js("return document.getElementById('waiting').hidden")
        assert browser.js("return document.getElementById('message').textContent") == ""
    finally:
        stop_server(process, jobs)
