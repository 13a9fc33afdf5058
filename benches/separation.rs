//! Separation speed: a 30 s clip, decode (WAV) + 2-stem separation + WAV encode, end to end.
//!
//! After criterion's measurement the benchmark checks the target of ≥ 20× real time on this
//! machine and fails (panics) when the median run is slower.

use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};
use stemscribe_benches::{assert_real_time, song_clip_wav, CLIP_SECS};
use stemscribe_engine::{
    decode, encode_to_vec, DecodeOptions, Engine, EngineConfig, OutputFormat, OutputSpec,
    SeparationModel, WavSampleFormat,
};

/// Real-time factor the end-to-end 2-stem path must reach.
const TARGET_REAL_TIME_FACTOR: f64 = 20.0;

fn end_to_end(engine: &Engine, input: &[u8]) -> usize {
    let audio = decode(input.to_vec(), &DecodeOptions::default()).expect("decodes");
    let vocals = engine
        .separate(&audio, SeparationModel::TwoTrackVocal, &mut |_| {})
        .expect("separates");
    let spec = OutputSpec {
        sample_rate: 44_100,
        channels: 1,
        format: OutputFormat::Wav(WavSampleFormat::Pcm16),
    };
    encode_to_vec(vocals, &spec).expect("encodes").0.len()
}

fn separation(c: &mut Criterion) {
    let engine = Engine::new(&EngineConfig::default()).expect("run scripts/setup.sh first");
    let input = song_clip_wav();
    let mut group = c.benchmark_group("separation");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(CLIP_SECS as u64));
    group.bench_function("2track_vocal_30s_end_to_end", |b| {
        b.iter(|| end_to_end(&engine, &input))
    });
    group.finish();

    assert_real_time("2track", TARGET_REAL_TIME_FACTOR, || {
        end_to_end(&engine, &input);
    });
}

criterion_group!(benches, separation);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
