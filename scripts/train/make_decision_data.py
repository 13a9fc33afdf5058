#!/usr/bin/env python3
"""Builds the training and held-out data of the sung / spoken / instrumental decision.

Every clip is made from `../shared/data` or synthesised here, and is labelled with its class
(`sung`, `speech`, `rap`, `instrumental`), its source recording (every clip made from one
recording shares it, so that folds hold a recording out with all its augmentations), the
augmentation applied and whether it lies over an accompaniment:

- sung: the corpus's solo singers, vocadito, MIR-1K, and the vocal stems and mixes of the
  multitrack clips; alone and over every accompaniment at -6 to +6 dB;
- speech: the corpus's speakers, and espeak-ng, flite and festival voices (espeak-ng and flite
  at several rates and pitches; festival's English diphones and, where Debian's festvox-*
  packages are installed, ten more diphone, unit and HTS voices); alone and over accompaniments;
- rap: synthesised words placed on the beat (eighth and sixteenth notes at 80-110 BPM) over
  drum and bass loops (the corpus's, and ones rendered here with fluidsynth);
- instrumental: the corpus's instrumentals and backings, and the annotated melodies of the sung
  recordings played by General MIDI instruments that hold notes like a voice (fluidsynth with
  FluidR3_GM; half of them with vibrato), alone and over accompaniments; with `--performed`,
  also random and sung melodies performed on them as a player would (glides, late vibrato that
  varies from note to note, swells, loose timing); with `--second-soundfont`, also random and
  sung melodies played by the same instruments of another soundfont (MuseScore General Lite),
  other timbres than Fluid's. Both are evaluation sets, left out of the shipped model's data.

Augmentations (one a clip, beside the excerpt length of 2-10 s): none, level (-40 to 0 dBFS),
reverb, noise (10-30 dB SNR), band limits at 8 and 16 kHz, MP3 at 64 kbit/s, pitch shift up to
+-3 semitones, time stretch up to +-15%.

usage: make_decision_data.py [--out DIR] [--scale X] [--seed N] [--jobs N] [--from N] [--performed]
                             [--second-soundfont]
Writes DIR/clips/*.wav (16-bit stereo, 44.1 kHz) and DIR/manifest.csv. Needs numpy, ffmpeg,
sox, espeak-ng, flite, festival, fluidsynth and fluid-soundfont-gm (Debian packages); the
festival voice kal_diphone from festvox-kallpc16k (festival's default voice, which some
installs of festival lack); those of FESTIVAL_VOICES come from festvox-kdlpc16k, festvox-us-slt-hts,
festvox-ca-ona-hts, festvox-czech-dita, festvox-czech-machac, festvox-czech-ph, festvox-italp16k,
festvox-itapc16k, festvox-suopuhe-lj, festvox-suopuhe-mv and festvox-ru.
"""

import argparse
import csv
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import wave
from multiprocessing import Pool
from pathlib import Path

import numpy as np

RATE = 44100
ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
CORPUS = SHARED / "corpus"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
# A second General MIDI soundfont (Debian's musescore-general-soundfont-small), for
# instruments of other timbres than Fluid's (`--second-soundfont`).
SECOND_SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
SECOND = "second soundfont "
AUGMENTATIONS = ["none", "level", "reverb", "noise", "band 8 kHz", "band 16 kHz", "mp3 64k",
                 "pitch", "stretch"]

# Sentences for the speech synthesisers (written for this script).
SENTENCES = [
    "The train to the coast leaves every morning at half past seven.",
    "Please put the boxes by the door before you go home tonight.",
    "We measured the river twice and found it higher than last year.",
    "Nobody expected the meeting to last until the evening.",
    "A small boat drifted slowly past the lighthouse in the fog.",
    "Turn left at the bakery and walk until you see the blue gate.",
    "The library will be closed on Monday for repairs to the roof.",
    "She wrote the numbers on the back of an old envelope.",
    "If the weather holds, we will paint the fence on Saturday.",
    "The children counted the ducks on the pond and got different answers.",
    "His voice was calm, but his hands were shaking a little.",
    "Our neighbours grow tomatoes, beans and far too many courgettes.",
    "The report explains why the bridge needs a new foundation.",
    "Could you tell me where the nearest post office is?",
    "At the end of the day, the market square was almost empty.",
    "They listened to the radio while the storm passed over the hills.",
]
RAP_WORDS = ("yeah check the rhythm now we move the crowd step up the beat goes on and on "
             "money time the city lights keep flashing bright no stopping now we run the night "
             "back to the block with the bass so loud never gonna quit we stand up proud").split()
# General MIDI programs that hold notes like a voice.
HOLDING = {"violin": 40, "viola": 41, "cello": 42, "strings": 48, "synth strings": 50,
           "trumpet": 56, "trombone": 57, "french horn": 60, "soprano sax": 64, "alto sax": 65,
           "tenor sax": 66, "oboe": 68, "clarinet": 71, "flute": 73, "recorder": 74,
           "organ": 16, "rock organ": 18, "square lead": 80, "saw lead": 81, "harmonica": 22,
           "accordion": 21}
# (The soundfont's choir and voice patches are sampled voices singing vowels: left out.)


def decode(path, stream=None, start=None, seconds=None):
    """Any file as float32 (frames, 2) at 44.1 kHz, through ffmpeg."""
    cmd = ["ffmpeg", "-v", "error"]
    if start is not None:
        cmd += ["-ss", str(start)]
    if seconds is not None:
        cmd += ["-t", str(seconds)]
    cmd += ["-i", str(path)]
    if stream is not None:
        cmd += ["-map", f"0:a:{stream}"]
    cmd += ["-ar", str(RATE), "-ac", "2", "-f", "f32le", "-"]
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.float32).reshape(-1, 2).copy()


def write_wav(path, audio):
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def activity(voice, hop=2205):
    """Per 50 ms frame: whether the voice is within 25 dB of its loudest frames."""
    frames = len(voice) // hop
    levels = np.array([rms(voice[i * hop:(i + 1) * hop]) for i in range(frames)])
    if not len(levels):
        return levels.astype(bool)
    top = np.percentile(levels, 95)
    return levels > top * 10 ** (-25 / 20)


def notes_activity(notes, seconds, hop=0.05):
    active = np.zeros(int(seconds / hop) + 1, dtype=bool)
    for onset, offset, _ in notes:
        active[int(onset / hop):int(offset / hop) + 1] = True
    return active


def read_ssvd_notes(path):
    return [tuple(map(float, line.split())) for line in open(path) if line.strip()]


def read_vocadito_notes(path):
    out = []
    for line in open(path):
        onset, hz, dur = map(float, line.strip().split(","))
        out.append((onset, onset + dur, 69 + 12 * np.log2(hz / 440)))
    return out


# ---------------------------------------------------------------------------------------------
# Sources


def sung_sources():
    """(source, voice or None, mix or None, activity per 50 ms, notes or None)."""
    out = []
    for path in sorted((CORPUS / "sung_solo").glob("ssvd_*.flac")):
        voice = decode(path)
        notes = read_ssvd_notes(path.with_suffix(".notes.txt"))
        out.append((path.stem, voice, None, notes_activity(notes, len(voice) / RATE), notes))
    voc = ROOT / "tests" / "data" / "vocadito_1.flac"
    if voc.is_file():
        voice = decode(voc)
        notes = read_vocadito_notes(voc.with_name("vocadito_1_notesA1.csv"))
        out.append(("vocadito_1", voice, None, notes_activity(notes, len(voice) / RATE), notes))
    amy = SHARED / "mir1k" / "amy_3_01.wav"
    if amy.is_file():
        both = decode(amy)
        voice = np.repeat(both[:, 1:2], 2, axis=1)
        backing = np.repeat(both[:, 0:1], 2, axis=1)
        out.append(("mir1k_amy_3_01", voice, voice + backing, activity(voice), None))
    stems = [(CORPUS / "stems" / "musdb7_TheEastonEllises_Falcon69.stem.mp4", "musdb7_falcon"),
             (CORPUS / "stems" / "jdc_test_audio_file.stem.mp4", "jdc"),
             (SHARED / "musdb7" / "music_delta_80s_rock.stem.mp4", "musdb7_80s_rock")]
    for path, name in stems:
        if path.is_file():
            voice = decode(path, 4)
            mix = decode(path, 0)
            out.append((name, voice, mix, activity(voice), None))
    jpop = CORPUS / "stems" / "tky823_sample3_jpop__vocal_16000.wav"
    if jpop.is_file():
        voice = decode(jpop)
        mix = decode(jpop.with_name("tky823_sample3_jpop__mixture_16000.wav"))
        out.append(("tky823_jpop", voice, mix, activity(voice), None))
    song = CORPUS / "songs" / "librosa_fishin_KarissaHobbs_LetsGoFishin.hq.ogg"
    if song.is_file():
        mix = decode(song, start=10, seconds=60)
        out.append(("fishin", None, mix, separated_activity(mix), None))
    example = SHARED / "mixes" / "spleeter_audio_example.mp3"
    if example.is_file():
        mix = decode(example)
        out.append(("spleeter_example", None, mix, separated_activity(mix), None))
    return out


def separated_activity(mix):
    """Where a mix without a vocal stem has a voice: the activity of the vocals that
    `stemscribe separate` (the release build of this checkout) finds in it."""
    binary = ROOT / "target" / "release" / "stemscribe"
    if not binary.is_file():
        sys.exit(f"{binary} not found: cargo build --release -p stemscribe-cli")
    with tempfile.TemporaryDirectory() as tmp:
        write_float(Path(tmp) / "mix.wav", mix)
        subprocess.run([str(binary), "-q", "separate", str(Path(tmp) / "mix.wav"), "--stems",
                        str(Path(tmp) / "stems")], check=True)
        vocals = decode(Path(tmp) / "stems" / "vocals.wav")
    # Active: within 20 dB of the loud part of the vocals and not far below the mix.
    hop = 2205
    frames = min(len(vocals), len(mix)) // hop
    v = np.array([rms(vocals[i * hop:(i + 1) * hop]) for i in range(frames)])
    m = np.array([rms(mix[i * hop:(i + 1) * hop]) for i in range(frames)])
    return (v > np.percentile(v, 95) * 0.1) & (v > m * 10 ** (-15 / 20))


def accompaniments():
    """(source, audio): the corpus's instrumentals and the backings of its multitrack clips."""
    out = []
    for path in sorted((CORPUS / "instrumental").iterdir()):
        if path.suffix in (".wav", ".ogg", ".mp3"):
            out.append((path.name.split(".")[0], decode(path)))
    stems = [(CORPUS / "stems" / "musdb7_TheEastonEllises_Falcon69.stem.mp4", "musdb7_falcon"),
             (CORPUS / "stems" / "jdc_test_audio_file.stem.mp4", "jdc"),
             (SHARED / "musdb7" / "music_delta_80s_rock.stem.mp4", "musdb7_80s_rock")]
    for path, name in stems:
        if path.is_file():
            parts = [decode(path, i) for i in (1, 2, 3)]
            n = min(len(p) for p in parts)
            out.append((name, sum(p[:n] for p in parts)))
    jpop = CORPUS / "stems" / "tky823_sample3_jpop__piano_16000.wav"
    if jpop.is_file():
        piano, bass = decode(jpop), decode(jpop.with_name("tky823_sample3_jpop__bass_16000.wav"))
        n = min(len(piano), len(bass))
        out.append(("tky823_jpop", piano[:n] + bass[:n]))
    classical = CORPUS / "stems" / "tky823_sample2_classical__mixture_16000.wav"
    if classical.is_file():
        out.append(("tky823_classical", decode(classical)))
    return out


# ---------------------------------------------------------------------------------------------
# Synthesis


def synth_speech(engine, voice, text, rate, pitch, tmp):
    out = Path(tmp) / "speech.wav"
    if engine == "espeak":
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w",
                        str(out), text], check=True, capture_output=True)
    elif engine == "flite":
        subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={rate}",
                        "--setf", f"int_f0_target_mean={pitch}", "-t", text, "-o", str(out)],
                       check=True, capture_output=True)
    else:
        txt = Path(tmp) / "speech.txt"
        txt.write_text(text)
        subprocess.run(["text2wave", "-eval", f"(voice_{voice})", "-o", str(out), str(txt)],
                       check=True, capture_output=True)
        # text2wave exits 0 without writing anything when the voice is not installed.
        if not out.is_file():
            raise RuntimeError(f"festival wrote nothing with the voice {voice}: is its "
                               "festvox package installed?")
    audio = decode(out)
    return audio


def smf(tracks, ticks=480):
    """A Standard MIDI File of (absolute tick, message bytes) lists, one track each."""
    def vlq(n):
        out = [n & 0x7F]
        n >>= 7
        while n:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        return bytes(reversed(out))
    data = struct.pack(">4sIHHH", b"MThd", 6, 1, len(tracks), ticks)
    for events in tracks:
        body, last = b"", 0
        for tick, msg in sorted(events, key=lambda e: (e[0], e[1][0] & 0xF0 != 0x80)):
            body += vlq(tick - last) + msg
            last = tick
        body += b"\x00\xff\x2f\x00"
        data += struct.pack(">4sI", b"MTrk", len(body)) + body
    return data


def render(midi_bytes, tmp, seconds, soundfont=SOUNDFONT):
    mid, out = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
    mid.write_bytes(midi_bytes)
    subprocess.run(["fluidsynth", "-ni", "-g", "0.6", "-r", str(RATE), "-F", str(out),
                    str(soundfont), str(mid)], check=True, capture_output=True)
    audio = decode(out)
    return audio[:int(seconds * RATE)]


def melody_midi(notes, program, vibrato, velocity, rng):
    """The notes (onset, offset, midi) at 120 BPM (960 ticks a second), channel 0."""
    tps = 960
    events = [(0, bytes([0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20])), (0, bytes([0xC0, program])),
              (0, bytes([0xB0, 101, 0])), (0, bytes([0xB0, 100, 0])), (0, bytes([0xB0, 6, 2]))]
    for onset, offset, pitch in notes:
        key = int(round(pitch))
        on, off = int(onset * tps), max(int(offset * tps), int(onset * tps) + 1)
        events.append((on, bytes([0x90, key, velocity])))
        events.append((off, bytes([0x80, key, 0])))
    if vibrato:
        rate, cents = rng.uniform(4.5, 7), rng.uniform(15, 60)
        end = max(n[1] for n in notes)
        for i in range(int(end * 50)):
            t = i / 50
            bend = int(8192 + 8191 * (cents / 200) * np.sin(2 * np.pi * rate * t))
            events.append((int(t * tps), bytes([0xE0, bend & 0x7F, bend >> 7])))
    return smf([events], ticks=480)


def performed_midi(notes, program, velocity, rng):
    """The notes (onset, offset, midi) as a player would shape them, channel 0: onsets a little
    off the grid, legato, glides into some notes (pitch bend over a 12-semitone range),
    intonation a few cents off, vibrato that starts late in held notes at a rate and depth
    that change from note to note, and a swell of expression (CC 11) in each note."""
    tps = 960
    events = [(0, bytes([0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20])), (0, bytes([0xC0, program])),
              (0, bytes([0xB0, 101, 0])), (0, bytes([0xB0, 100, 0])), (0, bytes([0xB0, 6, 12]))]
    glide_chance, legato = rng.uniform(0.2, 0.9), rng.random() < 0.6
    base_rate = rng.uniform(4.5, 7)
    played = []
    for i, (onset, offset, pitch) in enumerate(notes):
        onset = max(onset + rng.normal(0, 0.015), 0)
        if legato and i + 1 < len(notes):
            offset = notes[i + 1][0] + 0.03
        played.append((onset, max(offset, onset + 0.05), int(round(pitch))))
    # The bend in semitones, every 10 ms: glide, intonation and vibrato of the note sounding.
    end = max(p[1] for p in played)
    steps = int(end * 100) + 1
    bend = np.zeros(steps)
    for i, (onset, offset, key) in enumerate(played):
        a, b = int(onset * 100), min(int(offset * 100) + 1, steps)
        t = (np.arange(a, b) - a) / 100
        curve = np.full(len(t), rng.normal(0, 0.1))
        if i > 0 and rng.random() < glide_chance:
            glide = rng.uniform(0.04, 0.15)
            curve += (played[i - 1][2] - key) * np.clip(1 - t / glide, 0, 1)
        if offset - onset >= 0.3:
            delay, rate = rng.uniform(0.1, 0.4), base_rate + rng.uniform(-0.7, 0.7)
            depth = rng.uniform(0.1, 0.6)
            curve += depth * np.clip((t - delay) / 0.2, 0, 1) * np.sin(2 * np.pi * rate * t)
        bend[a:b] = curve
        events.append((int(onset * tps), bytes([0x90, key, velocity])))
        events.append((int(offset * tps), bytes([0x80, key, 0])))
        start, top = rng.uniform(60, 100), rng.uniform(105, 127)
        rise = max((offset - onset) * rng.uniform(0.1, 0.5), 0.02)
        for k in range(int((offset - onset) * 50)):
            level = start + (top - start) * min(k / 50 / rise, 1)
            events.append((int((onset + k / 50) * tps), bytes([0xB0, 11, int(level)])))
    for k, semis in enumerate(bend):
        value = int(np.clip(8192 + 8191 * semis / 12, 0, 16383))
        events.append((int(k / 100 * tps), bytes([0xE0, value & 0x7F, value >> 7])))
    return smf([events], ticks=480)


def beat_midi(bpm, bars, style, rng):
    """A drum and bass loop: kick, snare, hi-hats on channel 10 and a bass line on channel 2."""
    tpb = 480
    events = [(0, bytes([0xFF, 0x51, 0x03]) + int(60e6 / bpm).to_bytes(3, "big")),
              (0, bytes([0xC1, 33 + style % 4]))]
    root = int(rng.integers(28, 40))
    for bar in range(bars):
        for step in range(16):
            tick = (bar * 16 + step) * tpb // 4
            if step in (0, 8) or (style % 2 and step == 10):
                events += [(tick, bytes([0x99, 36, 110])), (tick + 60, bytes([0x89, 36, 0]))]
            if step in (4, 12):
                events += [(tick, bytes([0x99, 38, 100])), (tick + 60, bytes([0x89, 38, 0]))]
            if step % 2 == 0:
                events += [(tick, bytes([0x99, 42, 70])), (tick + 30, bytes([0x89, 42, 0]))]
            if step in (0, 3, 6, 10):
                key = root + int(rng.choice([0, 0, 3, 5, 7]))
                events += [(tick, bytes([0x91, key, 100])), (tick + tpb // 4, bytes([0x81, key, 0]))]
    return smf([events], ticks=tpb)


def rap_voice(words_audio, bpm, seconds, rng):
    """Words placed on eighth or sixteenth notes of `bpm`, a word per slot, with rests."""
    out = np.zeros((int(seconds * RATE), 2), dtype=np.float32)
    slot = 60 / bpm / (2 if rng.random() < 0.5 else 4)
    t = 0.0
    while t < seconds:
        if rng.random() < 0.85:
            word = words_audio[int(rng.integers(len(words_audio)))]
            start = int(t * RATE)
            n = min(len(word), len(out) - start)
            out[start:start + n] += word[:n]
            t += slot * max(1, int(np.ceil(len(word) / RATE / slot)))
        else:
            t += slot
    return out


# ---------------------------------------------------------------------------------------------
# Augmentation


def sox(audio, effect, tmp):
    a, b = Path(tmp) / "a.wav", Path(tmp) / "b.wav"
    write_float(a, audio)
    subprocess.run(["sox", "-q", str(a), "-e", "floating-point", str(b)] + effect, check=True,
                   capture_output=True)
    return decode(b)


def write_float(path, audio):
    with open(path, "wb") as f:
        data = audio.astype("<f4").tobytes()
        f.write(struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16,
                            3, 2, RATE, RATE * 8, 8, 32, b"data", len(data)))
        f.write(data)


def mp3(audio, tmp):
    a, b = Path(tmp) / "a.wav", Path(tmp) / "b.mp3"
    write_float(a, audio)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(a), "-b:a", "64k", str(b)],
                   check=True)
    return decode(b)[:len(audio)]


def band_limit(audio, hz):
    spectrum = np.fft.rfft(audio, axis=0)
    freqs = np.fft.rfftfreq(len(audio), 1 / RATE)
    spectrum[freqs > hz] = 0
    return np.fft.irfft(spectrum, n=len(audio), axis=0).astype(np.float32)


def augment(audio, name, rng, tmp):
    """`audio` with augmentation `name`; a pitch shift or stretch is applied before the cut."""
    if name == "level":
        return audio / max(rms(audio), 1e-9) * 10 ** (rng.uniform(-40, -3) / 20)
    if name == "reverb":
        return sox(audio, ["reverb", str(int(rng.uniform(30, 90)))], tmp)[:len(audio)]
    if name == "noise":
        snr = rng.uniform(10, 30)
        noise = rng.standard_normal(audio.shape).astype(np.float32)
        if rng.random() < 0.5:  # pink-ish: integrated white noise, high-passed
            noise = np.cumsum(noise, axis=0)
            noise -= np.convolve(noise[:, 0], np.ones(441) / 441, "same")[:, None]
        return audio + noise * (rms(audio) / rms(noise) * 10 ** (-snr / 20))
    if name == "band 8 kHz":
        return band_limit(audio, 8000)
    if name == "band 16 kHz":
        return band_limit(audio, 16000)
    if name == "mp3 64k":
        return mp3(audio, tmp)
    return audio


def pre_augment(audio, name, rng, tmp):
    if name == "pitch":
        return sox(audio, ["pitch", str(int(rng.uniform(-300, 300)))], tmp)
    if name == "stretch":
        return sox(audio, ["tempo", "-s", f"{rng.uniform(0.85, 1.15):.3f}"], tmp)
    return audio


def normalise(audio, db=-20.0):
    return audio / max(rms(audio), 1e-9) * 10 ** (db / 20)


def loop_to(audio, frames):
    reps = int(np.ceil(frames / max(len(audio), 1)))
    return np.tile(audio, (reps, 1))[:frames]


def over(voice, backing, db, rng):
    """`voice` over a random part of `backing` (looped), the voice `db` above it in RMS."""
    start = int(rng.integers(0, max(len(backing) - len(voice), 0) + 1))
    part = loop_to(backing[start:], len(voice)) if len(backing) > start else loop_to(backing, len(voice))
    part = part / max(rms(part), 1e-9) * rms(voice) * 10 ** (-db / 20)
    return voice + part


# ---------------------------------------------------------------------------------------------
# Jobs


def cut(audio, active, seconds, rng):
    """A `seconds` excerpt starting where `active` (per 50 ms) says the voice sounds, with at
    least half of it active; `None` when there is none."""
    frames = int(seconds / 0.05)
    starts = [i for i in range(max(len(active) - frames, 0) + 1)
              if active[i:i + 2].all() and active[i:i + frames].mean() >= 0.5]
    if not starts or len(audio) < seconds * RATE:
        return None
    i = int(rng.choice(starts))
    return audio[int(i * 0.05 * RATE):int(i * 0.05 * RATE) + int(seconds * RATE)]


def job(spec):
    """Makes one clip; returns its manifest row, or None."""
    (index, kind, source, augmentation, seconds, seed, make, out_dir) = spec
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        made = make(rng, tmp, seconds, augmentation)
        if made is None or made[0] is None:
            return None
        audio, setting = made
        audio = augment(normalise(audio), augmentation, rng, tmp)
        peak = np.max(np.abs(audio))
        if peak > 0.99:
            audio = audio * (0.99 / peak)
        name = f"{index:05d}.wav"
        write_wav(Path(out_dir) / "clips" / name, audio)
    return [name, kind, source, setting, augmentation, f"{len(audio) / RATE:.2f}"]


# Decoded sources, filled by `plan` before the worker pool forks (workers inherit them).
SUNG, BACKINGS, LOOPS = [], [], []


class Maker:
    """Builds one clip's audio from the shared sources; small to pickle (indices, not audio)."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __call__(self, rng, tmp, seconds, augmentation):
        return self.fn(rng, tmp, seconds, augmentation, *self.args)


def backings_except(name):
    return [b for b in BACKINGS if b[0] != name]


def make_sung(rng, tmp, seconds, augmentation, index):
    name, voice, mix, active, _ = SUNG[index]
    backings = backings_except(name)
    take_mix = voice is None or (mix is not None and rng.random() < 0.4)
    base = mix if take_mix else voice
    stretch = augmentation in ("pitch", "stretch")
    # A clip to be shifted or stretched is cut longer first, then to its length.
    length = min(seconds * 1.2 + 0.5, len(base) / RATE) if stretch else seconds
    clip = cut(base, active, length, rng)
    if clip is not None and stretch:
        clip = pre_augment(clip, augmentation, rng, tmp)[:int(seconds * RATE)]
    if clip is None or len(clip) < 2 * RATE:
        return None
    if not take_mix and backings and rng.random() < 0.6:
        _, backing = backings[int(rng.integers(len(backings)))]
        return over(normalise(clip), backing, rng.uniform(-6, 6), rng), "over " + name_of(backing)
    return clip, "mix" if take_mix else "alone"


def name_of(audio):
    return next(name for name, a in BACKINGS if a is audio)


def make_speech(rng, tmp, seconds, augmentation, speaker):
    backings = BACKINGS
    kind, ident = speaker
    if kind == "file":
        audio = decode(ident)
    else:
        engine, voice = ident
        parts = []
        while sum(len(p) for p in parts) < (seconds + 1) * RATE:
            text = SENTENCES[int(rng.integers(len(SENTENCES)))]
            rate = {"espeak": int(rng.integers(120, 230)), "flite": round(rng.uniform(0.8, 1.3), 2),
                    "festival": 0}[engine]
            pitch = {"espeak": int(rng.integers(20, 80)), "flite": int(rng.integers(90, 220)),
                     "festival": 0}[engine]
            parts.append(synth_speech(engine, voice, text, rate, pitch, tmp))
            parts.append(np.zeros((int(rng.uniform(0.1, 0.5) * RATE), 2), dtype=np.float32))
        audio = np.concatenate(parts)
    audio = pre_augment(audio, augmentation, rng, tmp)
    clip = cut(audio, activity(audio), min(seconds, len(audio) / RATE), rng)
    if clip is None or len(clip) < 2 * RATE:
        return None
    if backings and rng.random() < 0.5:
        _, backing = backings[int(rng.integers(len(backings)))]
        return over(normalise(clip), backing, rng.uniform(-6, 6), rng), "over " + name_of(backing)
    return clip, "alone"


def make_rap(rng, tmp, seconds, augmentation, ident):
    loops = LOOPS
    engine, voice = ident
    words = []
    for word in rng.choice(RAP_WORDS, size=12, replace=False):
        rate = int(rng.integers(200, 300)) if engine == "espeak" else round(rng.uniform(0.6, 0.9), 2)
        pitch = int(rng.integers(20, 70)) if engine == "espeak" else int(rng.integers(90, 160))
        w = synth_speech(engine, voice, str(word), rate, pitch, tmp)
        act = np.nonzero(np.abs(w[:, 0]) > 0.01)[0]
        if len(act):
            words.append(w[act[0]:act[-1] + 1])
    bpm = rng.uniform(80, 110)
    vocal = rap_voice(words, bpm, seconds, rng)
    vocal = pre_augment(vocal, augmentation, rng, tmp)[:int(seconds * RATE)]
    if rng.random() < 0.15:
        return vocal, "alone"
    if rng.random() < 0.5 or not loops:
        bars = int(np.ceil(seconds / (240 / bpm))) + 1
        beat = render(beat_midi(bpm, bars, int(rng.integers(4)), rng), tmp, seconds + 1)
        setting = "over a rendered beat"
    else:
        name, beat = loops[int(rng.integers(len(loops)))]
        beat = sox(beat[:int(20 * RATE)], ["tempo", f"{rng.uniform(0.85, 1.15):.3f}"], tmp)
        setting = "over " + name
    return over(normalise(vocal), beat, rng.uniform(-3, 6), rng), setting


def make_instrumental(rng, tmp, seconds, augmentation, kind, key):
    soundfont = SOUNDFONT
    if kind.startswith(SECOND):
        soundfont, kind = SECOND_SOUNDFONT, kind[len(SECOND):]
    if kind == "file":
        audio = dict(BACKINGS)[key]
        audio = pre_augment(audio[:int((seconds + 2) * RATE)] if augmentation in ("pitch", "stretch")
                            else audio, augmentation, rng, tmp)
        if len(audio) < seconds * RATE:
            audio = loop_to(audio, int(seconds * RATE))
        start = int(rng.integers(0, len(audio) - int(seconds * RATE) + 1))
        return audio[start:start + int(seconds * RATE)], "alone"
    if kind in ("sung notes", "performed sung notes"):
        notes = SUNG[key][4]
        backings = backings_except(SUNG[key][0])
    else:
        notes, backings = key, BACKINGS
    first = [n for n in notes if n[0] < notes[-1][1] - seconds] or notes[:1]
    t0 = max(first[int(rng.integers(len(first)))][0] - 0.1, 0)
    window = [(a - t0, b - t0, p + int(rng.integers(-5, 8)) // 1) for a, b, p in notes
              if a >= t0 and a < t0 + seconds + 2]
    if not window:
        return None
    shift = int(rng.choice([0, 0, 12, -12])) if rng.random() < 0.5 else 0
    window = [(a, b, min(max(p + shift, 36), 96)) for a, b, p in window]
    instrument = list(HOLDING)[int(rng.integers(len(HOLDING)))]
    velocity = int(rng.integers(60, 120))
    if kind.startswith("performed"):
        midi = performed_midi(window, HOLDING[instrument], velocity, rng)
        instrument += " performed"
    else:
        vibrato = rng.random() < 0.5
        midi = melody_midi(window, HOLDING[instrument], vibrato, velocity, rng)
        instrument += " with vibrato" if vibrato else ""
    if soundfont != SOUNDFONT:
        instrument += " (second soundfont)"
    audio = render(midi, tmp, seconds + 2, soundfont)
    audio = pre_augment(audio, augmentation, rng, tmp)
    audio = audio[:int(seconds * RATE)]
    if len(audio) < 2 * RATE or rms(audio) < 1e-4:
        return None
    if backings and rng.random() < 0.5:
        _, backing = backings[int(rng.integers(len(backings)))]
        return (over(normalise(audio), backing, rng.uniform(-6, 6), rng),
                f"{instrument} over {name_of(backing)}")
    return audio, f"{instrument} alone"


def synthetic_speakers():
    espeak = ["en", "en-us", "en-gb-x-rp", "en+m3", "en+f2", "en+f4", "en+croak", "en-us+m7",
              "en+klatt", "en-gb-scotland", "de", "fr", "es", "it", "nl", "pt"]
    flite = ["kal", "awb", "rms", "slt", "kal16"]
    return ([("synth", ("espeak", v)) for v in espeak] + [("synth", ("flite", v)) for v in flite]
            + [("synth", ("festival", "kal_diphone"))])


# Festival's other voices (Debian's festvox-* packages): diphones and clustered units of
# recorded speakers and HTS voices trained on recorded speech, in six languages (they read the
# English sentences with their own letter rules). Those not installed are left out.
FESTIVAL_VOICES = ["ked_diphone", "cmu_us_slt_arctic_hts", "upc_ca_ona_hts", "czech_dita",
                   "czech_machac", "czech_ph", "hy_fi_mv_diphone", "suo_fi_lj_diphone",
                   "lp_diphone", "pc_diphone", "msu_ru_nsh_clunits"]


def festival_voices():
    """The names of the festival voices installed."""
    voices = Path("/usr/share/festival/voices")
    return {p.name for p in voices.glob("*/*")} if voices.is_dir() else set()


def festival_speakers():
    installed = festival_voices()
    return [("synth", ("festival", v)) for v in FESTIVAL_VOICES if v in installed]


def plan(scale, seed, performed=False, second=False):
    """The clips to make: (kind, source, maker); decodes the sources into the globals.
    `performed`: also the performed melodies; `second`: also melodies played by the second
    soundfont's instruments (each after all the others, so that those keep their numbers and
    seeds)."""
    SUNG.extend(sung_sources())
    BACKINGS.extend(accompaniments())
    LOOPS.extend(b for b in BACKINGS if b[0] in ("librosa_choice_AdmiralBob_drum-bass",
                                                  "essentia_techno_loop", "madmom_stereo_sample"))
    specs = []
    for i, src in enumerate(SUNG):
        for _ in range(int(40 * scale)):
            specs.append(("sung", src[0], Maker(make_sung, i)))
    speakers = [("file", p) for p in sorted((CORPUS / "speech").iterdir())
                if p.suffix in (".wav", ".flac", ".ogg")]
    speakers.append(("file", ROOT / "tests" / "data" / "speech_arctic_a0007.wav"))
    for speaker in speakers:
        name = Path(speaker[1]).name.split(".")[0]
        for _ in range(int(16 * scale)):
            specs.append(("speech", name, Maker(make_speech, speaker)))
    specs += synthetic_specs(synthetic_speakers(), scale)
    for name, _ in BACKINGS:
        for _ in range(int(16 * scale)):
            specs.append(("instrumental", name, Maker(make_instrumental, "file", name)))
    specs += sung_melody_specs("sung notes", int(24 * scale))
    rng = np.random.default_rng(seed)
    for i in range(int(40 * scale)):  # random melodies, a source each of four
        specs.append(("instrumental", f"random melody {i % 4}",
                      Maker(make_instrumental, "notes", random_melody(rng))))
    # Planned last, so that every clip planned before them keeps its number and its seed.
    specs += synthetic_specs(festival_speakers(), scale)
    if performed:
        specs += performed_specs(rng, scale)
    if second:
        for i in range(int(160 * scale)):  # random melodies, a source each of eight
            specs.append(("instrumental", f"second soundfont melody {i % 8}",
                          Maker(make_instrumental, SECOND + "notes", random_melody(rng))))
        specs += sung_melody_specs(SECOND + "sung notes", int(12 * scale))
    return specs


def sung_melody_specs(kind, count):
    """`count` instrumental clips of each annotated sung melody, made as `kind`, each with its
    singer's recording as its source: (kind, source, maker) each."""
    return [("instrumental", src[0], Maker(make_instrumental, kind, i))
            for i, src in enumerate(SUNG) if src[4] for _ in range(count)]


def performed_specs(rng, scale):
    """The performed melodies' clips: (kind, source, maker) each."""
    specs = []
    for i in range(int(384 * scale)):  # performed melodies, a source each of 32
        specs.append(("instrumental", f"performed melody {i % 32}",
                      Maker(make_instrumental, "performed", random_melody(rng, varied=True))))
    return specs + sung_melody_specs("performed sung notes", int(8 * scale))


def random_melody(rng, varied=False):
    """14 s of notes (onset, offset, midi) in steps of up to a fourth; `varied`: more lengths
    (dotted, tied), rests, and leaps up to an octave now and then."""
    notes, t = [], 0.0
    pitch = int(rng.integers(55, 75))
    lengths = [0.25, 0.5, 0.5, 1.0, 1.5] + ([0.375, 0.75, 2.0, 3.0] if varied else [])
    steps = [-4, -2, -1, 0, 1, 2, 3, 5] + ([-7, 7, 12, -12, -3, 4] if varied else [])
    while t < 14:
        length = float(rng.choice(lengths))
        pitch = int(np.clip(pitch + rng.choice(steps), 48, 84))
        notes.append((t, t + length * 0.95, pitch))
        t += length
        if varied and rng.random() < 0.1:
            t += float(rng.choice([0.25, 0.5, 1.0]))
    return notes


def synthetic_specs(speakers, scale):
    """The speech and rap clips of synthesised `speakers`: (kind, source, maker) each."""
    specs = []
    for speaker in speakers:
        name = "synth " + "/".join(speaker[1])
        for _ in range(int(12 * scale)):
            specs.append(("speech", name, Maker(make_speech, speaker)))
        for _ in range(int(10 * scale)):
            specs.append(("rap", name, Maker(make_rap, speaker[1])))
    return specs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "target" / "decision-data"))
    parser.add_argument("--scale", type=float, default=1.0, help="clips per source, relative")
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--performed", action="store_true",
                        help="add 512 clips of instruments performing melodies as a player "
                             "would (glides, varying vibrato, swells): a harder test for the "
                             "decision, left out of the shipped model's data (docs/quality.md)")
    parser.add_argument("--second-soundfont", action="store_true",
                        help="add clips of random and sung melodies played by the instruments "
                             "of a second soundfont (Debian's musescore-general-soundfont-small), "
                             "other timbres than Fluid's")
    parser.add_argument("--from", dest="first", type=int, default=0, metavar="N",
                        help="make only the clips numbered N and on, keeping the manifest's "
                             "earlier rows (to extend or resume a run with the same seed)")
    args = parser.parse_args()
    for tool in ("ffmpeg", "sox", "espeak-ng", "flite", "text2wave", "fluidsynth"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install ffmpeg sox espeak-ng flite festival "
                     "festvox-kallpc16k fluidsynth fluid-soundfont-gm")
    if "kal_diphone" not in festival_voices():
        sys.exit("festival's voice kal_diphone not found: apt-get install festvox-kallpc16k")
    out = Path(args.out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    if args.second_soundfont and not SECOND_SOUNDFONT.exists():
        sys.exit(f"{SECOND_SOUNDFONT} not found: apt-get install musescore-general-soundfont-small")
    specs = plan(args.scale, args.seed, args.performed, args.second_soundfont)
    rng = np.random.default_rng(args.seed)
    jobs = []
    for i, (kind, source, maker) in enumerate(specs):
        augmentation = AUGMENTATIONS[i % len(AUGMENTATIONS)]
        seconds = float(rng.choice([2, 2, 3, 4, 5, 6, 8, 10]))
        jobs.append((i, kind, source, augmentation, seconds, int(rng.integers(2**31)), maker,
                     str(out)))
    print(f"{len(jobs)} clips planned", file=sys.stderr)
    rows = []
    if args.first > 0:
        with open(out / "manifest.csv", newline="") as f:
            rows = [row for row in list(csv.reader(f))[1:]
                    if int(Path(row[0]).stem) < args.first]
        jobs = jobs[args.first:]
    with Pool(args.jobs) as pool:
        for n, row in enumerate(pool.imap(job, jobs, chunksize=4)):
            if row:
                rows.append(row)
            if n % 200 == 0:
                print(f"{n}/{len(jobs)}", file=sys.stderr)
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "kind", "source", "setting", "augmentation", "seconds"])
        w.writerows(rows)
    counts = {}
    for row in rows:
        counts[row[1]] = counts.get(row[1], 0) + 1
    print(f"{len(rows)} clips in {out}: {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
