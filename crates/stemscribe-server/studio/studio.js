// The stemscribe studio: submits songs to the jobs API, follows their progress, and plays,
// draws and offers the results. Plain browser JavaScript: no build step, nothing fetched
// from anywhere but this server.
"use strict";

const $ = (id) => document.getElementById(id);

// Plain words for the API's status codes.
const PLAIN = {
  40000010: "No sung melody was found: the song sounds instrumental, spoken or rapped.",
  40000011: "The file is empty.",
  40000012: "This file could not be read as audio. Try WAV, MP3, FLAC, Ogg or M4A.",
  40000013: "The song is too long: at most 10 minutes.",
  40000016: "The file is too large: at most 100 MB.",
  40000020: "The server did not accept these options.",
  40200001: "This server needs a key: enter your appkey and token under “Server key”.",
  40200002: "The appkey or token is wrong.",
  40200011: "The server is busy. Try again when a song in the queue has finished.",
  50000000: "Something went wrong on the server.",
};

function plain(error) {
  if (!error) return "";
  return PLAIN[error.status_code] || "The server refused the song (" + error.status_text + ").";
}

// Credentials, when the server asks for them, travel in the query string.
function withKey(url) {
  const appkey = $("appkey").value.trim();
  const token = $("token").value.trim();
  if (!appkey || !token) return url;
  const sep = url.includes("?") ? "&" : "?";
  return url + sep + "appkey=" + encodeURIComponent(appkey) + "&token=" + encodeURIComponent(token);
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

function say(text) {
  $("message").textContent = text;
}

const STAGES = {
  queued: "Waiting for a free slot",
  decoding: "Reading the file",
  separating: "Separating the stems",
  transcribing: "Transcribing the melody",
  done: "Done",
  failed: "Failed",
};

// ---- The queue -------------------------------------------------------------------------

const jobs = new Map(); // id -> { view, li }
const waiting = []; // { file, separate, midi } refused as busy, sent again when a job ends

function add(file) {
  const separate = $("separate").value;
  const midi = $("midi").checked;
  if (!separate && !midi) {
    say("Choose stems, the melody, or both.");
    return;
  }
  if (waiting.length) {
    waiting.push({ file, separate, midi });
    showWaiting();
  } else {
    submit({ file, separate, midi });
  }
}

function showWaiting() {
  $("waiting").hidden = waiting.length === 0;
  $("waiting").textContent = waiting.length + (waiting.length === 1 ? " song waits" : " songs wait") +
    " for room in the server's queue: " + waiting.map((w) => w.file.name).join(", ");
}

// Sends the next song that waits for room, if any.
function drain() {
  const next = waiting.shift();
  showWaiting();
  if (next) submit(next);
}

let sending = 0; // uploads in flight

async function submit({ file, separate, midi }) {
  const query = new URLSearchParams({ midi: String(midi), name: file.name });
  if (separate) query.set("separate", separate);
  let response, body;
  sending++;
  try {
    response = await fetch(withKey("/api/v1/jobs?" + query), { method: "POST", body: file });
    body = await response.json().catch(() => ({}));
  } catch (e) {
    sending--;
    say("Cannot reach the stemscribe server. Is it still running?");
    drain();
    return;
  }
  sending--;
  // Busy while other songs of this page are on their way or at work: wait for one to end.
  const busy = sending > 0 ||
    [...jobs.values()].some((e) => e.view.state === "queued" || e.view.state === "running");
  if (body.status_code === 40200011 && busy) {
    waiting.unshift({ file, separate, midi });
    showWaiting();
    return;
  }
  if (response.status !== 202) {
    say(file.name + ": " + (PLAIN[body.status_code] || body.message || "refused"));
    drain();
    return;
  }
  say("");
  track({ id: body.id, input: file.name, state: "queued", stage: "queued", progress: 0, files: [] });
}

function track(view) {
  if (jobs.has(view.id)) return;
  const li = document.createElement("li");
  li.dataset.job = view.id;
  li.innerHTML =
    '<span class="name"></span><span class="actions">' +
    '<button type="button" class="quiet open" disabled>Open</button>' +
    '<button type="button" class="quiet remove">Remove</button></span>' +
    '<span class="stage"></span><progress max="1" value="0"></progress><span class="error" hidden></span>';
  li.querySelector(".name").textContent = view.input || view.id;
  li.querySelector(".open").addEventListener("click", () => open(view.id));
  li.querySelector(".remove").addEventListener("click", () => remove(view.id));
  $("queue").appendChild(li);
  $("empty").hidden = true;
  jobs.set(view.id, { view, li });
  show(view);
  poll(view.id);
}

function show(view) {
  const entry = jobs.get(view.id);
  if (!entry) return;
  entry.view = view;
  const li = entry.li;
  li.dataset.state = view.state;
  const percent = Math.round(view.progress * 100);
  li.querySelector(".stage").textContent =
    (STAGES[view.stage] || view.stage) + (view.state === "running" ? " · " + percent + "%" : "");
  const bar = li.querySelector("progress");
  bar.value = view.progress;
  bar.setAttribute("aria-label", (view.input || "song") + ": " + percent + "%");
  const error = li.querySelector(".error");
  error.hidden = !view.error;
  error.textContent = plain(view.error);
  li.querySelector(".open").disabled = view.state !== "done";
}

async function poll(id) {
  while (jobs.has(id)) {
    let view;
    try {
      const response = await fetch(withKey("/api/v1/jobs/" + id));
      if (response.status === 404) {
        forget(id);
        return;
      }
      view = await response.json();
    } catch (e) {
      await pause(1000);
      continue;
    }
    if (!view.id) return;
    show(view);
    // Stems are complete once listed: while the job goes on (the melody, the next stem), read
    // them already if this result is the one that will open.
    if (!current) for (const f of view.files) if (f.name.endsWith(".wav")) stemBuffer(jobs.get(id), f);
    if (view.state === "done") {
      drain();
      if (!current) open(id);
      return;
    }
    if (view.state === "failed") {
      drain();
      return;
    }
    await pause(250);
  }
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function forget(id) {
  const entry = jobs.get(id);
  if (entry) entry.li.remove();
  jobs.delete(id);
  $("empty").hidden = jobs.size > 0;
  if (current && current.id === id) close();
}

async function remove(id) {
  await fetch(withKey("/api/v1/jobs/" + id), { method: "DELETE" }).catch(() => {});
  forget(id);
}

// ---- Playback --------------------------------------------------------------------------

let context = null; // AudioContext, made on the first result
let current = null; // { id, stems: [...], notes, duration }
let playing = null; // { startedAt, sources, tones }
let offset = 0; // seconds into the song while paused

function audioContext() {
  if (!context) context = new AudioContext({ sampleRate: 44100 });
  return context;
}

// Reads the 32-bit float (or 16-bit) WAV the jobs API writes into an AudioBuffer without
// resampling; anything else goes through the browser's decoder.
async function wavBuffer(bytes) {
  const view = new DataView(bytes);
  const text = (at) => String.fromCharCode(...new Uint8Array(bytes, at, 4));
  if (bytes.byteLength < 44 || text(0) !== "RIFF" || text(8) !== "WAVE") {
    return audioContext().decodeAudioData(bytes);
  }
  let at = 12, format = 0, channels = 0, rate = 0, bits = 0;
  while (at + 8 <= bytes.byteLength) {
    const id = text(at), size = view.getUint32(at + 4, true);
    if (id === "fmt ") {
      format = view.getUint16(at + 8, true);
      channels = view.getUint16(at + 10, true);
      rate = view.getUint32(at + 12, true);
      bits = view.getUint16(at + 22, true);
      if (format === 0xfffe && size >= 40) format = view.getUint16(at + 32, true);
    } else if (id === "data") {
      const frames = Math.floor(Math.min(size, bytes.byteLength - at - 8) / (channels * bits / 8));
      if (!(format === 3 && bits === 32) && !(format === 1 && bits === 16)) break;
      const buffer = audioContext().createBuffer(channels, Math.max(frames, 1), rate);
      const outs = [];
      for (let c = 0; c < channels; c++) outs.push(buffer.getChannelData(c));
      const start = at + 8;
      if (bits === 32 && start % 4 === 0) {
        const samples = new Float32Array(bytes, start, frames * channels);
        for (let i = 0, k = 0; i < frames; i++) for (let c = 0; c < channels; c++) outs[c][i] = samples[k++];
      } else {
        const step = bits / 8;
        for (let i = 0, k = start; i < frames; i++) for (let c = 0; c < channels; c++, k += step)
          outs[c][i] = bits === 32 ? view.getFloat32(k, true) : view.getInt16(k, true) / 32768;
      }
      return buffer;
    }
    at += 8 + size + (size % 2);
  }
  return audioContext().decodeAudioData(bytes);
}

function position() {
  if (!playing) return offset;
  return Math.min(current.duration, audioContext().currentTime - playing.startedAt);
}

function gainOf(stem) {
  const solo = current.stems.some((s) => s.solo);
  return stem.muted || (solo && !stem.solo) ? 0 : stem.volume;
}

function applyGains() {
  if (!current) return;
  for (const stem of current.stems) {
    stem.gain.gain.value = gainOf(stem);
    stem.row.querySelector(".mute").setAttribute("aria-pressed", String(stem.muted));
    stem.row.querySelector(".solo").setAttribute("aria-pressed", String(stem.solo));
  }
}

function play() {
  if (!current || playing) return;
  const ctx = audioContext();
  ctx.resume();
  if (offset >= current.duration - 0.01) offset = 0;
  const startedAt = ctx.currentTime + 0.05 - offset;
  const sources = current.stems.map((stem) => {
    const source = ctx.createBufferSource();
    source.buffer = stem.buffer;
    source.connect(stem.gain);
    source.start(startedAt + offset, offset);
    return source;
  });
  sources[0] && (sources[0].onended = () => {
    if (playing && playing.sources === sources) stop(current.duration);
  });
  playing = { startedAt, sources, tones: [] };
  if ($("synth").checked) scheduleTones();
  $("play").textContent = "Pause";
}

function stop(at) {
  if (!playing) return;
  const ended = playing;
  playing = null;
  for (const source of ended.sources) {
    source.onended = null;
    try { source.stop(); } catch (e) { /* already stopped */ }
  }
  for (const tone of ended.tones) {
    try { tone.stop(); } catch (e) { /* already stopped */ }
  }
  offset = at;
  $("play").textContent = "Play";
}

function toggle() {
  if (playing) stop(position());
  else play();
}

function seek(seconds) {
  if (!current) return;
  const target = Math.max(0, Math.min(current.duration, seconds));
  if (playing) {
    stop(target);
    play();
  } else {
    offset = target;
  }
  draw();
}

// The melody as a simple tone over the mix: one triangle oscillator per note.
function scheduleTones() {
  if (!playing || !current.notes.length) return;
  const ctx = audioContext();
  for (const note of current.notes) {
    if (note.end <= offset) continue;
    const begin = playing.startedAt + Math.max(note.start, offset);
    const end = playing.startedAt + note.end;
    const osc = ctx.createOscillator();
    const env = ctx.createGain();
    osc.type = "triangle";
    osc.frequency.value = 440 * Math.pow(2, (note.pitch - 69) / 12);
    env.gain.setValueAtTime(0, begin);
    env.gain.linearRampToValueAtTime(0.18, begin + 0.01);
    env.gain.setValueAtTime(0.18, Math.max(begin + 0.01, end - 0.02));
    env.gain.linearRampToValueAtTime(0, end);
    osc.connect(env).connect(ctx.destination);
    osc.start(begin);
    osc.stop(end + 0.01);
    playing.tones.push(osc);
  }
}

// ---- Drawing ---------------------------------------------------------------------------

function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  return canvas.getContext("2d");
}

function drawWave(stem) {
  const canvas = stem.canvas;
  const g = fitCanvas(canvas);
  const w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h);
  const channels = [];
  for (let c = 0; c < stem.buffer.numberOfChannels; c++) channels.push(stem.buffer.getChannelData(c));
  const frames = stem.buffer.length;
  const per = Math.max(1, Math.floor(frames / w));
  g.fillStyle = getComputedStyle(document.body).getPropertyValue("--wave") || "#3b6ea8";
  for (let x = 0; x < w; x++) {
    const from = Math.floor((x * frames) / w);
    const to = Math.min(frames, from + per);
    let lo = 0, hi = 0;
    for (const data of channels) {
      for (let i = from; i < to; i += 4) {
        const v = data[i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    const top = ((1 - Math.min(1, hi)) * h) / 2;
    const bottom = ((1 - Math.max(-1, lo)) * h) / 2;
    g.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
}

// Where the piano roll puts a note: x from time, y from pitch (one row per semitone).
function rollGeometry() {
  const canvas = $("roll");
  const notes = current.notes;
  let low = 60, high = 72;
  if (notes.length) {
    low = Math.floor(Math.min(...notes.map((n) => n.pitch))) - 2;
    high = Math.ceil(Math.max(...notes.map((n) => n.pitch))) + 2;
  }
  const w = canvas.width, h = canvas.height;
  const row = h / (high - low + 1);
  return {
    low, high, row,
    x: (t) => (t / current.duration) * w,
    y: (pitch) => h - (pitch - low + 1) * row,
  };
}

function drawRoll() {
  const canvas = $("roll");
  const g = fitCanvas(canvas);
  g.clearRect(0, 0, canvas.width, canvas.height);
  const geo = rollGeometry();
  for (let p = geo.low; p <= geo.high; p++) {
    if ([1, 3, 6, 8, 10].includes(((p % 12) + 12) % 12)) {
      g.fillStyle = "#eeeae2";
      g.fillRect(0, geo.y(p), canvas.width, geo.row);
    }
  }
  g.fillStyle = "#d9480f";
  for (const note of current.notes) {
    const x = geo.x(note.start);
    g.fillRect(x, geo.y(note.pitch), Math.max(2, geo.x(note.end) - x), Math.max(2, geo.row));
  }
}

function draw() {
  if (!current) return;
  const at = position();
  const fraction = current.duration ? at / current.duration : 0;
  for (const head of document.querySelectorAll("#result .head")) head.style.left = fraction * 100 + "%";
  $("time").textContent = clock(at) + " / " + clock(current.duration);
}

function frame() {
  draw();
  requestAnimationFrame(frame);
}

// ---- Opening a result ------------------------------------------------------------------

function close() {
  stop(0);
  current = null;
  $("result").hidden = true;
  for (const li of document.querySelectorAll("#queue li")) li.classList.remove("selected");
}

// A stem's audio, fetched and read once per job (the promise is kept).
function stemBuffer(entry, file) {
  entry.buffers = entry.buffers || new Map();
  if (!entry.buffers.has(file.name)) {
    entry.buffers.set(file.name, fetch(withKey(file.url)).then((r) => {
      if (!r.ok) throw new Error("missing " + file.name);
      return r.arrayBuffer();
    }).then(wavBuffer));
  }
  return entry.buffers.get(file.name);
}

async function open(id) {
  const entry = jobs.get(id);
  if (!entry) return;
  const opened = performance.now();
  close();
  const view = entry.view;
  entry.li.classList.add("selected");
  const ctx = audioContext();
  const waves = view.files.filter((f) => f.name.endsWith(".wav"));
  const melodyFile = view.files.find((f) => f.name === "melody.json");
  const [buffers, melody] = await Promise.all([
    Promise.all(waves.map((f) => stemBuffer(entry, f))),
    melodyFile ? fetch(withKey(melodyFile.url)).then((r) => r.json()) : Promise.resolve(null),
  ]);
  const notes = melody ? melody.midiList : [];
  const duration = Math.max(0, ...buffers.map((b) => b.duration), ...notes.map((n) => n.end));
  current = { id, stems: [], notes, duration };
  offset = 0;
  const box = $("stems");
  box.textContent = "";
  waves.forEach((file, i) => {
    const name = file.name.replace(/\.wav$/, "");
    const row = document.createElement("div");
    row.className = "stem";
    row.dataset.stem = name;
    row.innerHTML =
      '<div class="controls"><span class="label"></span>' +
      '<button type="button" class="quiet mute" aria-pressed="false">Mute</button>' +
      '<button type="button" class="quiet solo" aria-pressed="false">Solo</button>' +
      '<input type="range" class="volume" min="0" max="1.5" step="0.05" value="1"></div>' +
      '<div class="lane"><canvas tabindex="0"></canvas><div class="head"></div></div>';
    row.querySelector(".label").textContent = name;
    const canvas = row.querySelector("canvas");
    canvas.setAttribute("aria-label", name + " waveform; click or press arrow keys to seek");
    row.querySelector(".volume").setAttribute("aria-label", name + " volume");
    row.querySelector(".mute").setAttribute("aria-label", "Mute " + name);
    row.querySelector(".solo").setAttribute("aria-label", "Solo " + name);
    const gain = ctx.createGain();
    const meter = ctx.createAnalyser();
    meter.fftSize = 2048;
    gain.connect(meter);
    meter.connect(ctx.destination);
    const stem = { name, buffer: buffers[i], gain, meter, row, canvas, muted: false, solo: false, volume: 1 };
    row.querySelector(".mute").addEventListener("click", () => { stem.muted = !stem.muted; applyGains(); });
    row.querySelector(".solo").addEventListener("click", () => { stem.solo = !stem.solo; applyGains(); });
    row.querySelector(".volume").addEventListener("input", (e) => { stem.volume = Number(e.target.value); applyGains(); });
    box.appendChild(row);
    current.stems.push(stem);
  });
  $("result").hidden = false;
  for (const stem of current.stems) drawWave(stem);
  $("melody").hidden = !melody;
  if (melody) {
    drawRoll();
    $("melody-note").textContent = notes.length + " notes, confidence " + melody.confidence.toFixed(2);
  }
  const withoutMelody = view.error && view.error.status_code === 40000010;
  if (withoutMelody) say(plain(view.error));
  applyGains();
  downloads(view);
  $("result-title").textContent = "Listen: " + (view.input || id);
  draw();
  window.studio.readyMs = performance.now() - opened;
}

function downloads(view) {
  const list = $("downloads");
  list.textContent = "";
  const link = (href, text, filename) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = withKey(href);
    a.textContent = text;
    a.download = filename;
    li.appendChild(a);
    list.appendChild(li);
  };
  for (const file of view.files) {
    if (file.name.endsWith(".wav")) {
      const stem = file.name.replace(/\.wav$/, "");
      link(file.url, stem + " (WAV)", file.name);
      link(file.url + "?format=mp3", stem + " (MP3)", stem + ".mp3");
    } else if (file.name === "melody.mid") {
      link(file.url, "melody (MIDI)", file.name);
    } else if (file.name === "melody.json") {
      link(file.url, "melody (JSON)", file.name);
    }
  }
}

// Seeking from a lane: a click, or arrow keys when it has the focus.
function laneSeek(event) {
  const canvas = event.target.closest(".lane canvas");
  if (!canvas || !current) return;
  const box = canvas.getBoundingClientRect();
  seek(((event.clientX - box.left) / box.width) * current.duration);
}

// ---- Start -----------------------------------------------------------------------------

function start() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => {
    for (const file of e.target.files) add(file);
    e.target.value = "";
  });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    for (const file of e.dataTransfer.files) add(file);
  });
  $("play").addEventListener("click", toggle);
  $("synth").addEventListener("change", () => { if (playing) { const at = position(); stop(at); play(); } });
  $("result").addEventListener("click", laneSeek);
  $("result").addEventListener("keydown", (e) => {
    if (!e.target.matches(".lane canvas") || !current) return;
    if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      e.preventDefault();
      seek(position() + (e.key === "ArrowLeft" ? -5 : 5));
    }
  });
  document.addEventListener("keydown", (e) => {
    if (e.code !== "Space" || e.target.matches("input:not([type=checkbox]):not([type=range]), select, textarea, button, summary, a")) return;
    e.preventDefault();
    toggle();
  });
  window.addEventListener("resize", () => {
    if (!current) return;
    for (const stem of current.stems) drawWave(stem);
    if (!$("melody").hidden) drawRoll();
  });
  fetch("/api/v1/models").then((r) => r.json()).then((models) => {
    for (const name of models.installed || []) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = "installed model: " + name;
      $("separate").appendChild(option);
    }
  }).catch(() => {});
  // Jobs outlive the page: show the ones the server still has.
  fetch(withKey("/api/v1/jobs")).then((r) => r.json()).then((list) => {
    for (const view of list.jobs || []) track(view);
  }).catch(() => {});
  requestAnimationFrame(frame);
}

// What the end-to-end test reads; the page itself does not need it.
window.studio = {
  readyMs: null,
  position,
  duration: () => (current ? current.duration : 0),
  rollGeometry: () => (current ? rollGeometry() : null),
  notes: () => (current ? current.notes : []),
  levels: () => (current ? current.stems.map((s) => {
    const data = new Float32Array(s.meter.fftSize);
    s.meter.getFloatTimeDomainData(data);
    let sum = 0;
    for (const v of data) sum += v * v;
    return { name: s.name, rms: Math.sqrt(sum / data.length) };
  }) : []),
};

start();
