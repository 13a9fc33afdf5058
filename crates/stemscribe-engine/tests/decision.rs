//! The singing decision on fixtures synthesised at test time, with text, melodies and beats
//! that its training data (`scripts/train/make_decision_data.py`) does not hold: speech from
//! espeak-ng, rap (words on the beat over a rendered drum loop), and a sung melody played by
//! instruments that hold notes like a voice (fluidsynth with FluidR3_GM). Needs the models from
//! `scripts/setup.sh` and the tools from `scripts/test/tools.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use stemscribe_engine::{
    decode_file, Audio, DecodeOptions, Engine, EngineConfig, EngineError, NoOutput,
};
use stemscribe_eval::mix_over;

const SOUNDFONT: &str = "/usr/share/sounds/sf2/FluidR3_GM.sf2";

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(&EngineConfig::default()).unwrap())
}

/// A scratch directory of this test binary, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("stemscribe-decision-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a tool, failing with the way to install it when it is missing.
fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{program} could not run ({e}): install the test tools with scripts/test/tools.sh"
            )
        });
    assert!(status.status.success(), "{program} {args:?}: {status:?}");
}

fn decode(path: &Path) -> Audio {
    decode_file(path, &DecodeOptions::default()).unwrap()
}

fn speak(dir: &Path, voice: &str, rate: u32, pitch: u32, text: &str) -> Audio {
    let path = dir.join(format!("{voice}-{rate}-{pitch}.wav"));
    let (rate, pitch) = (rate.to_string(), pitch.to_string());
    run(
        "espeak-ng",
        &[
            "-v",
            voice,
            "-s",
            &rate,
            "-p",
            &pitch,
            "-w",
            path.to_str().unwrap(),
            text,
        ],
    );
    decode(&path)
}

/// A format-0 Standard MIDI File at 1,000 ticks a second (tempo 500,000 µs, 500 ticks a
/// beat) of `(channel, program)` changes and `(start s, end s, channel, key, velocity)` notes.
fn smf(programs: &[(u8, u8)], notes: &[(f64, f64, u8, u8, u8)]) -> Vec<u8> {
    let mut events: Vec<(u64, Vec<u8>)> = programs
        .iter()
        .map(|&(channel, program)| (0, vec![0xC0 | channel, program]))
        .collect();
    for &(start, end, channel, key, velocity) in notes {
        events.push(((start * 1000.0) as u64, vec![0x90 | channel, key, velocity]));
        events.push(((end * 1000.0) as u64, vec![0x80 | channel, key, 0]));
    }
    events.sort_by_key(|(tick, message)| (*tick, message[0] & 0xF0 == 0x90));
    let mut track = Vec::new();
    let mut last = 0;
    for (tick, message) in events {
        let mut delta = tick - last;
        let mut bytes = vec![(delta & 0x7F) as u8];
        delta >>= 7;
        while delta > 0 {
            bytes.push(0x80 | (delta & 0x7F) as u8);
            delta >>= 7;
        }
        bytes.reverse();
        track.extend(bytes);
        track.extend(message);
        last = tick;
    }
    track.extend([0x00, 0xFF, 0x2F, 0x00]);
    let mut file = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xF4".to_vec();
    file.extend(b"MTrk");
    file.extend((track.len() as u32).to_be_bytes());
    file.extend(track);
    file
}

fn render(dir: &Path, name: &str, midi: &[u8]) -> Audio {
    let (mid, wav) = (
        dir.join(format!("{name}.mid")),
        dir.join(format!("{name}.wav")),
    );
    std::fs::write(&mid, midi).unwrap();
    run(
        "fluidsynth",
        &[
            "-ni",
            "-g",
            "0.6",
            "-r",
            "44100",
            "-F",
            wav.to_str().unwrap(),
            SOUNDFONT,
            mid.to_str().unwrap(),
        ],
    );
    decode(&wav)
}

fn assert_no_output(what: &str, audio: &Audio) {
    let result = engine().transcribe(audio, &mut |_| {});
    assert!(
        matches!(result, Err(EngineError::NoOutput(_))),
        "{what}: {result:?}"
    );
}

#[test]
fn synthesised_speech_is_refused() {
    let dir = scratch("speech");
    for (voice, rate, pitch) in [("en-us", 160, 50), ("en+f3", 190, 70), ("en-gb", 140, 35)] {
        let speech = speak(
            &dir,
            voice,
            rate,
            pitch,
            "The committee will publish its findings after the holidays, once every \
             measurement has been checked by two people who were not part of the survey.",
        );
        let result = engine().transcribe(&speech, &mut |_| {});
        assert!(
            matches!(result, Err(EngineError::NoOutput(NoOutput::Spoken { .. }))),
            "{voice}: {result:?}"
        );
    }
}

#[test]
fn synthesised_rap_over_a_beat_is_refused() {
    let dir = scratch("rap");
    let bpm = 96.0;
    let eighth = 30.0 / bpm;
    let words = [
        "drop", "the", "track", "we", "ride", "tonight", "keep", "it", "tight",
    ];
    let mut voice = Audio::new(44_100, vec![vec![0.0; 44_100 * 6]; 2]).unwrap();
    let mut channels: Vec<Vec<f32>> = voice.channels().to_vec();
    for (i, word) in words.iter().cycle().take(20).enumerate() {
        let spoken = speak(&dir, "en-us", 260, 40, word);
        let start = (i as f64 * eighth * 44_100.0) as usize;
        for (c, channel) in channels.iter_mut().enumerate() {
            let source = &spoken.channels()[c.min(spoken.channels().len() - 1)];
            for (k, s) in source.iter().enumerate() {
                if let Some(out) = channel.get_mut(start + k) {
                    *out += s;
                }
            }
        }
    }
    voice = Audio::new(44_100, channels).unwrap();
    let mut notes = Vec::new();
    for beat in 0..10 {
        let t = f64::from(beat) * 60.0 / bpm;
        let drum = if beat % 2 == 0 { 36 } else { 38 };
        notes.push((t, t + 0.1, 9, drum, 110));
        notes.push((t, t + 0.05, 9, 42, 70));
        notes.push((t + eighth, t + eighth + 0.05, 9, 42, 70));
        notes.push((
            t,
            t + eighth * 1.8,
            1,
            36 + [0, 0, 3, 5][beat as usize % 4],
            100,
        ));
    }
    let beat = render(&dir, "beat", &smf(&[(1, 34)], &notes));
    assert_no_output("rap alone", &voice);
    assert_no_output("rap over a beat", &mix_over(&voice, &beat, 3.0).unwrap().0);
}

#[test]
fn a_sung_melody_played_by_instruments_is_mostly_refused() {
    // The opening of "Frère Jacques" (a melody the training renders do not hold), legato, by
    // eight instruments. Measured (2026-12-07, with the frame network): all eight refused (the
    // model before it gave the violin notes); held out, 81% of the instrumental clips are
    // refused (docs/quality.md, "The singing decision"). Two misses fail.
    let dir = scratch("instruments");
    let mut given_notes = Vec::new();
    let keys = [67, 69, 71, 67, 67, 69, 71, 67, 71, 72, 74, 71, 72, 74];
    let lengths = [
        0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0, 0.5, 0.5, 1.0,
    ];
    let instruments = [
        ("violin", 40),
        ("cello", 42),
        ("flute", 73),
        ("oboe", 68),
        ("clarinet", 71),
        ("alto sax", 65),
        ("trumpet", 56),
        ("organ", 19),
    ];
    for (name, program) in instruments {
        let mut t = 0.1;
        let notes: Vec<(f64, f64, u8, u8, u8)> = keys
            .iter()
            .zip(lengths)
            .map(|(&key, length)| {
                let note = (t, t + length * 0.97, 0, key, 96);
                t += length;
                note
            })
            .collect();
        let audio = render(&dir, name, &smf(&[(0, program)], &notes));
        match engine().transcribe(&audio, &mut |_| {}) {
            Err(EngineError::NoOutput(_)) => {}
            other => given_notes.push(format!("{name}: {other:?}")),
        }
    }
    assert!(given_notes.len() <= 1, "{given_notes:#?}");
}
