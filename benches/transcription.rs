//! Transcription speed: a 30 s clip, decode (WAV) + vocal separation + pitch tracking + note
//! segmentation + MIDI file, end to end.
//!
//! After criterion's measurement the benchmark checks the target (a 3-minute song in at most
//! 15 s, so ≥ 12× real time) on this machine and fails (panics) when the median run is slower.

use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};
use stemscribe_benches::{assert_real_time, song_clip_wav, CLIP_SECS};
use stemscribe_engine::{decode, to_smf, DecodeOptions, Engine, EngineConfig, SmfOptions};

/// Real-time factor the end-to-end transcription path must reach (180 s in 15 s).
const TARGET_REAL_TIME_FACTOR: f64 = 12.0;

fn end_to_end(engine: &Engine, input: &[u8]) -> usize {
    let audio = decode(input.to_vec(), &DecodeOptions::default()).expect("decodes");
    let melody = engine
        .transcribe(&audio, &mut |_| {})
        .expect("the example song is sung");
    to_smf(&melody, &SmfOptions::default()).len()
}

fn transcription(c: &mut Criterion) {
    let engine = Engine::new(&EngineConfig::default()).expect("run scripts/setup.sh first");
    let input = song_clip_wav();
    let mut group = c.benchmark_group("transcription");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(CLIP_SECS as u64));
    group.bench_function("midi_30s_end_to_end", |b| {
        b.iter(|| end_to_end(&engine, &input))
    });
    group.finish();

    assert_real_time("transcription", TARGET_REAL_TIME_FACTOR, || {
        end_to_end(&engine, &input);
    });
}

criterion_group!(benches, transcription);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
