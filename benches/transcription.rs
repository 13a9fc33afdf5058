//! Transcription speed: a 3-minute song, decode (WAV) + vocal separation + pitch tracking +
//! note segmentation + MIDI file, end to end; and each installed pitch tracker alone on 5 s,
//! so that their speeds compare in one run.
//!
//! After criterion's measurement the benchmark checks the target (a 3-minute song in at most
//! 8 s, so ≥ 22.5× real time) on this machine and fails (panics) when the median run is
//! slower. The song is timed whole, not a short clip scaled up: the separator's fixed-length
//! windows make a 30 s clip cost more per second than a song.

use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};
use stemscribe_benches::{assert_real_time, song_clip, song_wav_of};
use stemscribe_engine::runtime::Runtime;
use stemscribe_engine::transcribe::Transcriber;
use stemscribe_engine::{
    decode, to_smf, DecodeOptions, Engine, EngineConfig, PitchModel, RuntimeConfig, SmfOptions,
    TranscriptionOptions,
};

/// Seconds each pitch tracker tracks per iteration (CREPE full needs about 2.5 s per second).
const TRACKER_SECS: usize = 5;

/// Seconds of song the end-to-end benchmark transcribes.
const SONG_SECS: usize = 180;

/// Real-time factor the end-to-end transcription path must reach (180 s in 8 s).
const TARGET_REAL_TIME_FACTOR: f64 = 22.5;

fn end_to_end(engine: &Engine, input: &[u8]) -> usize {
    let audio = decode(input.to_vec(), &DecodeOptions::default()).expect("decodes");
    let melody = engine
        .transcribe(&audio, &mut |_| {})
        .expect("the example song is sung");
    to_smf(&melody, &SmfOptions::default()).len()
}

fn transcription(c: &mut Criterion) {
    let engine = Engine::new(&EngineConfig::default()).expect("run scripts/setup.sh first");
    let input = song_wav_of(SONG_SECS);
    let mut group = c.benchmark_group("transcription");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.throughput(Throughput::Elements(SONG_SECS as u64));
    group.bench_function("midi_180s_end_to_end", |b| {
        b.iter(|| end_to_end(&engine, &input))
    });
    group.finish();

    assert_real_time("transcription", SONG_SECS, TARGET_REAL_TIME_FACTOR, || {
        end_to_end(&engine, &input);
    });
}

fn pitch_trackers(c: &mut Criterion) {
    let runtime = Runtime::new(&RuntimeConfig::default()).expect("run scripts/setup.sh first");
    let clip = song_clip();
    let voice = clip.section(0..TRACKER_SECS * clip.sample_rate() as usize);
    let mut group = c.benchmark_group("pitch_trackers");
    group.sample_size(10);
    group.throughput(Throughput::Elements(TRACKER_SECS as u64));
    for model in PitchModel::ALL {
        let transcriber = Transcriber::new(&runtime, model.spec(), TranscriptionOptions::default())
            .expect("every tracker is installed by scripts/setup.sh");
        group.bench_function(model.name(), |b| {
            b.iter(|| transcriber.track(&voice, &mut |_| {}).expect("tracks"))
        });
    }
    group.finish();
}

criterion_group!(benches, transcription, pitch_trackers);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
