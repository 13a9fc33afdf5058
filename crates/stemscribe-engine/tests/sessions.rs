//! Several sessions per model: an engine shared by threads runs their separations at once,
//! and each gives exactly what it gives alone. Needs `scripts/setup.sh` to have run.

use std::path::PathBuf;

use stemscribe_engine::runtime::Runtime;
use stemscribe_engine::{
    decode_file, DecodeOptions, Engine, EngineConfig, RuntimeConfig, SeparationModel,
};

fn config(sessions: usize) -> EngineConfig {
    EngineConfig {
        runtime: RuntimeConfig {
            threads: Some(1),
            sessions: Some(sessions),
            ..RuntimeConfig::default()
        },
        separation_only: true,
        ..EngineConfig::default()
    }
}

#[test]
fn a_model_holds_the_sessions_asked_for() {
    let runtime = Runtime::new(&config(3).runtime).unwrap();
    let model = runtime.model("spleeter-2stems.onnx").unwrap();
    assert_eq!(model.sessions(), 3);
    let one = Runtime::new(&RuntimeConfig::default()).unwrap();
    assert_eq!(one.model("spleeter-2stems.onnx").unwrap().sessions(), 1);
}

#[test]
fn concurrent_separations_give_what_each_gives_alone() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/rock_mix.wav");
    let song = decode_file(&path, &DecodeOptions::default()).unwrap();
    let engine = Engine::new(&config(2)).unwrap();
    let alone = engine
        .separate(&song, SeparationModel::TwoTrackVocal, &mut |_| {})
        .unwrap();
    let together: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    engine
                        .separate(&song, SeparationModel::TwoTrackVocal, &mut |_| {})
                        .unwrap()
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    for vocals in together {
        assert!(
            vocals == alone,
            "a concurrent separation differs from one alone"
        );
    }
}
