//! Models installed under a name, an ensemble among them, served by the engine as the jobs API
//! and Python ask for them (`Engine::separate_installed`). Needs `scripts/setup.sh` to have run.

use std::path::PathBuf;

#[path = "../../../tests/support/linked_models.rs"]
mod linked_models;
use linked_models::link_installed_models;

use stemscribe_engine::runtime::Runtime;
use stemscribe_engine::separate::{install_ensemble, install_model_file, EnsembleMethod};
use stemscribe_engine::{
    decode_file, DecodeOptions, Engine, EngineConfig, RuntimeConfig, SourceStem,
};

fn installed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/installed")
}

/// A fresh models directory that sees every installed file (see `link_installed_models`).
fn linked_models_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "stemscribe-engine-installed-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    link_installed_models(&installed(), &dir);
    dir
}

#[test]
fn an_installed_ensemble_gives_the_median_of_its_members_stems() {
    let models = linked_models_dir();
    let runtime_config = RuntimeConfig {
        models_dir: Some(models.clone()),
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(&runtime_config).unwrap();
    for (name, file) in [
        ("mdx", "mdx-twin/mdx-twin.onnx"),
        ("bs", "roformer-twin/bs/model.onnx"),
        ("mel", "roformer-twin/mel/model.onnx"),
    ] {
        install_model_file(&runtime, &installed().join(file), name).unwrap();
    }
    let members = ["mdx", "bs", "mel"].map(String::from);
    install_ensemble(&runtime, "three", &members, EnsembleMethod::MedianWave).unwrap();
    let engine = Engine::new(&EngineConfig {
        runtime: runtime_config,
        separation_only: true,
        ..EngineConfig::default()
    })
    .unwrap();
    assert_eq!(engine.installed_models(), ["bs", "mdx", "mel", "three"]);

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/rock_mix.wav");
    let song = decode_file(&path, &DecodeOptions::default()).unwrap();
    let vocals = |name: &str| {
        let stems = engine.separate_installed(name, &song, &mut |_| {}).unwrap();
        let vocals = stems.into_iter().find(|s| s.stem == SourceStem::Vocals);
        vocals.unwrap().audio
    };
    let each = ["mdx", "bs", "mel"].map(vocals);
    let three = vocals("three");
    for (channel, side) in three.channels().iter().enumerate() {
        for (i, &value) in side.iter().enumerate() {
            let mut values = each.each_ref().map(|a| a.channels()[channel][i]);
            values.sort_by(f32::total_cmp);
            assert_eq!(value, values[1], "channel {channel}, sample {i}");
        }
    }
    let _ = std::fs::remove_dir_all(&models);
}
