//! A full-size BS-RoFormer: a random-weight twin of `model_bs_roformer_ep_317_sdr_12.9755`
//! (dim 512, depth 12, 62 bands, its YAML's `dim_t` 801 and `num_overlap` 2; made by
//! `scripts/test/make_roformer_twin.py --full` on first use, in the models directory's
//! `roformer-twin/ep317/`, and converted into the user's cache as `stemscribe separate
//! --model-file` converts it)
//! separating a 30 s clip of the bundled example, with the seconds per stage of one run
//! (network, STFT, inverse STFT) so the time around the network shows.
//!
//! Heavy: one run takes minutes on a 2-core CPU, and criterion makes eleven. Set
//! `STEMSCRIBE_BENCH_SECONDS` to run a shorter clip. The speed against audio-separator itself
//! (it needs torch) is measured by hand, as docs/models.md reports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, SamplingMode};
use stemscribe_benches::{song_of, CLIP_SECS};
use stemscribe_engine::audio::timings::Timings;
use stemscribe_engine::runtime::setup::cache_dir;
use stemscribe_engine::runtime::Runtime;
use stemscribe_engine::separate::{convert_checkpoint, RoformerModel, Separate};
use stemscribe_engine::RuntimeConfig;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The twin's checkpoint, made first if it is missing.
fn twin_checkpoint(models: &Path) -> PathBuf {
    let dir = models.join("roformer-twin");
    let checkpoint = dir.join("ep317/MODEL.ckpt");
    if checkpoint.is_file() {
        return checkpoint;
    }
    let venv = Command::new(root().join("scripts/setup.sh"))
        .arg("--venv-only")
        .output()
        .expect("scripts/setup.sh runs");
    assert!(venv.status.success(), "scripts/setup.sh --venv-only failed");
    let python = String::from_utf8(venv.stdout).expect("a path");
    let made = Command::new(python.trim())
        .arg(root().join("scripts/test/make_roformer_twin.py"))
        .arg(&dir)
        .arg("--full")
        .status()
        .expect("the twin script runs");
    assert!(made.success(), "make_roformer_twin.py --full failed");
    checkpoint
}

fn roformer(c: &mut Criterion) {
    let runtime = Runtime::new(&RuntimeConfig::default()).expect("run scripts/setup.sh first");
    let checkpoint = twin_checkpoint(runtime.models_dir());
    let onnx = convert_checkpoint(&checkpoint, None, &cache_dir(), &mut |line| {
        eprintln!("{line}")
    })
    .expect("the twin converts");
    let model = RoformerModel::new(&runtime, &onnx).expect("the converted twin loads");
    let seconds = std::env::var("STEMSCRIBE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CLIP_SECS);
    let song = song_of(seconds);
    let separate = || model.separate(&song, &mut |_| {}).expect("separates").len();
    let (_, stages) = Timings::collect(separate);

    let runs = Mutex::new(Vec::new());
    let mut group = c.benchmark_group("roformer");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(1));
    group.bench_function(format!("ep317_full_twin_{seconds}s"), |b| {
        b.iter_custom(|iterations| {
            let start = Instant::now();
            for _ in 0..iterations {
                std::hint::black_box(separate());
            }
            let elapsed = start.elapsed();
            runs.lock()
                .expect("not poisoned")
                .push(elapsed / iterations.max(1) as u32);
            elapsed
        })
    });
    group.finish();

    let mut runs = runs.into_inner().expect("not poisoned");
    runs.sort();
    let median = runs[runs.len() / 2].as_secs_f64();
    println!(
        "ep317 twin, {seconds} s clip, {} chunks: median {median:.1} s ({:.2}x real time)",
        model.chunks(song.frames()),
        seconds as f64 / median
    );
    println!("one run, seconds per stage:\n{stages}");
}

criterion_group!(benches, roformer);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
