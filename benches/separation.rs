//! Separation speed: a 30 s clip, decode (WAV) + separation + WAV encode, end to end, for
//! `2track_vocal` and `bs_4track_vocal`, and every four-track stem (`--stems`); and the
//! separation alone by Spleeter and by random-weight twins at full tensor size of a UVR
//! MDX-Net model (`scripts/test/make_mdx_twin.py`: n_fft 6144, dim_f 3072, dim_t 256, as
//! UVR-MDX-NET-Inst_HQ_3) and of an HT-Demucs ONNX export (`scripts/test/make_demucs_twin.py`:
//! 343,980-sample segments, four stems), side by side. The twins' networks are small, so their
//! time is mostly each family's framing, transforms and chunking; a real model adds its
//! network's time.
//!
//! After criterion's measurement the benchmark checks the targets on this machine (≥ 20×
//! real time for 2-track, ≥ 10× for each 4-track model, ≥ 6× for every 4-track stem) and
//! fails (panics) when the median run is slower.

use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};
use stemscribe_benches::{assert_real_time, song_clip_wav, CLIP_SECS};
use stemscribe_engine::runtime::Runtime;
use stemscribe_engine::separate::{MdxModel, MdxParams, ModelFile, Separate};
use stemscribe_engine::{
    decode, encode_to_vec, DecodeOptions, Engine, EngineConfig, OutputFormat, OutputSpec,
    RuntimeConfig, SeparationModel, WavSampleFormat,
};

/// Real-time factor the end-to-end 2-stem path must reach.
const TARGET_REAL_TIME_FACTOR: f64 = 20.0;
/// Real-time factor the four-track models must reach.
const FOUR_TRACK_REAL_TIME_FACTOR: f64 = 10.0;
/// Real-time factor of every four-track stem at once (one network pass for the derived
/// stems, see `Engine::separate_all`), which the API never asks for.
const ALL_STEMS_REAL_TIME_FACTOR: f64 = 6.0;

fn end_to_end(engine: &Engine, input: &[u8], model: SeparationModel) -> usize {
    let audio = decode(input.to_vec(), &DecodeOptions::default()).expect("decodes");
    let vocals = engine
        .separate(&audio, model, &mut |_| {})
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
    for model in [
        SeparationModel::TwoTrackVocal,
        SeparationModel::FourTrackVocal,
    ] {
        group.bench_function(format!("{model}_30s_end_to_end"), |b| {
            b.iter(|| end_to_end(&engine, &input, model))
        });
    }
    let song = decode(input.clone(), &DecodeOptions::default()).expect("decodes");
    let every_stem = || {
        engine
            .separate_all(&song, SeparationModel::FourTrackVocal, &mut |_| {})
            .expect("separates")
            .len()
    };
    group.bench_function("bs_4track_all_stems_30s", |b| b.iter(every_stem));
    group.bench_function("families/spleeter_30s", |b| {
        b.iter(|| {
            engine
                .separate_all(&song, SeparationModel::TwoTrackVocal, &mut |_| {})
                .expect("separates")
                .len()
        })
    });
    let runtime = Runtime::new(&RuntimeConfig::default()).expect("run scripts/setup.sh first");
    let twin = runtime
        .models_dir()
        .join("mdx-twin/full/mdx-full-twin.onnx");
    let params = MdxParams::for_model(&twin).expect("scripts/setup.sh makes the twin");
    let mdx = MdxModel::new(&runtime, &twin, params).expect("the twin loads");
    let demucs = ModelFile::open(
        &runtime,
        &runtime
            .models_dir()
            .join("demucs-twin/full/demucs-full-twin.onnx"),
    )
    .expect("scripts/setup.sh makes the twin");
    group.bench_function("families/demucs_full_twin_30s", |b| {
        b.iter(|| {
            demucs
                .separate(&song, &mut |_| {})
                .expect("separates")
                .len()
        })
    });
    group.bench_function("families/mdx_full_twin_30s", |b| {
        b.iter(|| mdx.separate(&song, &mut |_| {}).expect("separates").len())
    });
    group.finish();

    assert_real_time("2track", CLIP_SECS, TARGET_REAL_TIME_FACTOR, || {
        end_to_end(&engine, &input, SeparationModel::TwoTrackVocal);
    });
    for model in [
        SeparationModel::FourTrackVocal,
        SeparationModel::FourTrackAcc,
    ] {
        assert_real_time(model.name(), CLIP_SECS, FOUR_TRACK_REAL_TIME_FACTOR, || {
            end_to_end(&engine, &input, model);
        });
    }
    assert_real_time(
        "bs_4track every stem",
        CLIP_SECS,
        ALL_STEMS_REAL_TIME_FACTOR,
        || {
            every_stem();
        },
    );
}

criterion_group!(benches, separation);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
