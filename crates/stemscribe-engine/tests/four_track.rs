//! The four-track models: derived stems by default, an installed four-stem card or model file
//! when there is one, and the API outputs consistent with every stem. Needs `scripts/setup.sh`
//! to have run.

use std::path::{Path, PathBuf};

use stemscribe_engine::runtime::Runtime;
use stemscribe_engine::separate::{install_model_file, MdxModel, MdxOptions, MdxParams};
use stemscribe_engine::{
    decode_file, Audio, DecodeOptions, Engine, EngineConfig, EngineError, RuntimeConfig,
    SeparationModel, SourceStem, FOUR_STEMS,
};

fn installed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/installed")
}

fn song() -> Audio {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/rock_mix.wav");
    decode_file(&path, &DecodeOptions::default()).unwrap()
}

fn max_difference(a: &Audio, b: &Audio) -> f32 {
    a.channels()
        .iter()
        .flatten()
        .zip(b.channels().iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Checks that `separate_all` gives the four stems from one network pass, and that the API
/// models return its vocals and the sum of its other stems.
fn assert_consistent(engine: &Engine) {
    let song = song();
    // Progress counts the network's windows: every stem takes as many as one stem.
    let (mut every_stem, mut one_stem) = (0, 0);
    let stems = engine
        .separate_all(&song, SeparationModel::FourTrackVocal, &mut |p| {
            every_stem = every_stem.max(p.total);
        })
        .unwrap();
    let names: Vec<SourceStem> = stems.iter().map(|s| s.stem).collect();
    assert_eq!(names, FOUR_STEMS);
    for stem in &stems {
        assert_eq!(
            (stem.audio.frames(), stem.audio.num_channels()),
            (song.frames(), 2)
        );
    }
    let vocals = engine
        .separate(&song, SeparationModel::FourTrackVocal, &mut |p| {
            one_stem = one_stem.max(p.total);
        })
        .unwrap();
    assert!(one_stem > 0);
    assert_eq!(every_stem, one_stem, "one network pass for every stem");
    assert!(max_difference(&vocals, &stems[0].audio) < 1e-6);
    let accompaniment = engine
        .separate(&song, SeparationModel::FourTrackAcc, &mut |_| {})
        .unwrap();
    let parts: Vec<Audio> = stems[1..].iter().map(|s| s.audio.clone()).collect();
    assert!(max_difference(&accompaniment, &Audio::sum(&parts).unwrap()) < 1e-4);
}

#[test]
fn derived_stems_are_the_default() {
    let engine = Engine::new(&EngineConfig::default()).unwrap();
    assert!(engine.four_stem_model().is_none());
    assert_consistent(&engine);
}

#[test]
fn an_installed_four_stem_card_replaces_the_derivation() {
    let dir = std::env::temp_dir().join(format!("stemscribe-four-card-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let link = |name: &str| std::os::unix::fs::symlink(installed().join(name), dir.join(name));
    for name in ["lib", "spleeter-2stems.onnx", "swift-f0.onnx"] {
        link(name).unwrap();
    }
    let tiny = installed().join("tiny-4stems");
    for name in ["tiny-4stems.onnx", "tiny-4stems.card.toml"] {
        std::fs::copy(tiny.join(name), dir.join(name)).unwrap();
    }
    let engine = engine_in(&dir).unwrap();
    let model = engine.four_stem_model().expect("the card is picked up");
    assert_eq!(model.file(), dir.join("tiny-4stems.onnx"));
    assert_consistent(&engine);

    std::fs::write(dir.join("broken.card.toml"), "id = 3").unwrap();
    let error = engine_in(&dir).unwrap_err().to_string();
    assert!(error.contains("broken.card.toml"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_installed_four_stem_model_file_serves_the_four_track_models() {
    let (dir, runtime) = scratch_models("four-file");
    // The twin's MODEL.json lists vocals first; the engine still hands out FOUR_STEMS' order.
    let twin = installed().join("demucs-twin/demucs-twin.onnx");
    install_model_file(&runtime, &twin, "twin4").unwrap();
    // An MDX-Net (two-stem) file beside it serves nothing by itself.
    install_model_file(&runtime, &installed().join("mdx-twin/mdx-twin.onnx"), "mdx").unwrap();
    let engine = engine_in(&dir).unwrap();
    let model = engine
        .four_stem_model()
        .expect("the model file is picked up");
    assert_eq!(model.file(), dir.join("user/twin4.onnx"));
    assert_consistent(&engine);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_installed_mdx_model_serves_two_track_only_when_asked() {
    let (dir, runtime) = scratch_models("two-file");
    let twin = installed().join("mdx-twin/mdx-twin.onnx");
    install_model_file(&runtime, &twin, "voice").unwrap();
    let song = song();
    let spleeter = engine_in(&dir)
        .unwrap()
        .separate(&song, SeparationModel::TwoTrackVocal, &mut |_| {})
        .unwrap();
    let asked = |name: &str| {
        engine_with(
            &dir,
            EngineConfig {
                two_stem_model: Some(name.to_owned()),
                ..EngineConfig::default()
            },
        )
    };
    let engine = asked("voice").unwrap();
    let vocals = engine
        .separate(&song, SeparationModel::TwoTrackVocal, &mut |_| {})
        .unwrap();
    let accompaniment = engine
        .separate(&song, SeparationModel::TwoTrackAcc, &mut |_| {})
        .unwrap();
    let direct = MdxModel::new(&runtime, &twin, MdxParams::for_model(&twin).unwrap())
        .unwrap()
        .separate_with(&song, &MdxOptions::default(), &mut |_| {})
        .unwrap();
    assert!(max_difference(&vocals, &direct.primary) < 1e-6);
    assert!(max_difference(&accompaniment, &direct.secondary) < 1e-6);
    assert!(
        max_difference(&vocals, &spleeter) > 1e-3,
        "the default stays Spleeter"
    );
    let error = asked("missing").unwrap_err().to_string();
    assert!(error.contains("stemscribe models add"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh models directory linking the bundled models, and a runtime reading it.
fn scratch_models(tag: &str) -> (PathBuf, Runtime) {
    let dir = std::env::temp_dir().join(format!("stemscribe-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["lib", "spleeter-2stems.onnx", "swift-f0.onnx"] {
        std::os::unix::fs::symlink(installed().join(name), dir.join(name)).unwrap();
    }
    let runtime = Runtime::new(&RuntimeConfig {
        models_dir: Some(dir.clone()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    (dir, runtime)
}

fn engine_in(dir: &Path) -> Result<Engine, EngineError> {
    engine_with(dir, EngineConfig::default())
}

/// An engine as `config` says, reading its models from `dir`.
fn engine_with(dir: &Path, config: EngineConfig) -> Result<Engine, EngineError> {
    Engine::new(&EngineConfig {
        runtime: RuntimeConfig {
            models_dir: Some(dir.to_owned()),
            ..config.runtime
        },
        ..config
    })
}
