//! BS-RoFormer, Mel-Band RoFormer and MDX23C checkpoints run as python-audio-separator runs them:
//! random-weight twins made by `scripts/test/make_roformer_twin.py` and converted by
//! `scripts/setup/roformer.py` (both run by `scripts/setup.sh`) separate a 12 s clip (chunks of
//! dim_t frames) and a 4 s clip (the reference's 256-frame segments for short inputs) into the
//! stems the script's numpy re-implementation of the reference gives. That reimplementation
//! agrees with audio-separator 0.47.1 itself to 127 dB or more on these clips
//! (`scripts/eval/check_roformer_reference.py`); stemscribe's stems must agree with it to 80 dB
//! (they do to 128-142 dB; see docs/models.md).

use std::path::PathBuf;

use stemscribe_eval::global_sdr;
use stemscribe_runtime::{Runtime, RuntimeConfig};
use stemscribe_separate::{ModelFile, Separate, SourceStem};

mod common;

fn twin_dir(family: &str) -> PathBuf {
    common::installed().join("roformer-twin").join(family)
}

fn runtime() -> Runtime {
    Runtime::new(&RuntimeConfig {
        models_dir: Some(common::installed()),
        library: Some(common::installed().join("lib/libonnxruntime.so")),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

fn check(family: &str, stems: &[SourceStem]) {
    let model = ModelFile::open(&runtime(), &twin_dir(family).join("model.onnx")).unwrap();
    assert_eq!(model.stems(), stems);
    for clip in ["long", "short"] {
        let input = common::read_stereo(&twin_dir(family).join(format!("{clip}.f32")));
        let mut calls = 0;
        let separated = model
            .separate(&input, &mut |p| {
                calls += 1;
                assert_eq!(p.done, calls);
            })
            .unwrap();
        assert!(calls > 2, "{family} {clip}: {calls} chunks");
        for (stem, ours) in &separated {
            let reference =
                common::read_stereo(&twin_dir(family).join(format!("{clip}-{}.f32", stem.name())));
            assert_eq!(ours.frames(), reference.frames());
            let sdr = global_sdr(&reference, ours);
            eprintln!("{family} {clip} {}: {sdr:.1} dB", stem.name());
            assert!(sdr >= 80.0, "{family} {clip} {}: {sdr:.1} dB", stem.name());
        }
    }
}

#[test]
fn a_bs_roformer_twin_separates_like_the_reference() {
    check("bs", &[SourceStem::Vocals, SourceStem::Other]);
}

#[test]
fn an_mdx23c_twin_separates_like_the_reference() {
    check("mdx23c", &[SourceStem::Vocals, SourceStem::Instrumental]);
}

#[test]
fn a_mel_band_roformer_twin_separates_like_the_reference() {
    check(
        "mel",
        &[
            SourceStem::Vocals,
            SourceStem::Drums,
            SourceStem::Bass,
            SourceStem::Other,
        ],
    );
}

/// Copies the BS twin's graph (cut to `keep` bytes, when given) and a card changed by `edit`
/// into a folder of their own.
fn spoiled(name: &str, keep: Option<usize>, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("stemscribe-spoiled-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let graph = std::fs::read(twin_dir("bs").join("model.onnx")).unwrap();
    let file = dir.join("model.onnx");
    std::fs::write(&file, &graph[..keep.unwrap_or(graph.len())]).unwrap();
    let mut card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(twin_dir("bs").join("model.json")).unwrap()).unwrap();
    edit(&mut card);
    std::fs::write(dir.join("model.json"), card.to_string()).unwrap();
    file
}

/// A way to damage the twin: its name, bytes of the graph kept, a change to the card, and what
/// the error must say.
type Damage = (
    &'static str,
    Option<usize>,
    fn(&mut serde_json::Value),
    &'static str,
);

#[test]
fn damaged_graphs_and_cards_are_clear_errors() {
    let runtime = runtime();
    let cases: [Damage; 5] = [
        ("cut", Some(5_000), |_| {}, "model.onnx"),
        ("empty", Some(0), |_| {}, "model.onnx"),
        (
            "features",
            None,
            |c| c["roformer"]["band_bins"][0] = serde_json::json!([0, 1, 2, 3]),
            "`bands` [frames,",
        ),
        (
            "huge",
            None,
            |c| c["roformer"]["dim_t"] = serde_json::json!(u64::MAX),
            "dim_t",
        ),
        (
            "shape",
            None,
            |c| c["roformer"]["band_bins"] = serde_json::json!("all"),
            "not a RoFormer card",
        ),
    ];
    for (name, keep, edit, expected) in cases {
        let file = spoiled(name, keep, edit);
        let error = ModelFile::open(&runtime, &file).expect_err(name);
        let text = format!("{error:#}");
        let chain = std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ");
        assert!(
            text.contains(expected) || chain.contains(expected),
            "{name}: {chain}"
        );
        let _ = std::fs::remove_dir_all(file.parent().unwrap());
    }
}
