//! The four-track models on real audio against recorded figures: the derived drums, bass and
//! other of the MUSDB18 sample against its stems, and how much added noise and mains hum reach
//! the accompaniment with and without the four-track model's noise suppression. Needs
//! `scripts/setup.sh` to have run. Every floor sits just under the figure measured on
//! 2026-12-04 at 7e7ad72, which its comment gives.

use std::path::PathBuf;
use std::sync::OnceLock;

use stemscribe_engine::separate::SourceStem;
use stemscribe_engine::{decode_file, Audio, DecodeOptions, Engine, EngineConfig, SeparationModel};
use stemscribe_eval::{add_noise, global_sdr, noise_passed_db, NoiseKind};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let config = EngineConfig {
            separation_only: true,
            ..EngineConfig::default()
        };
        Engine::new(&config).unwrap()
    })
}

/// Stream `track` of the MUSDB18 sample: 0 mix, 1 drums, 2 bass, 3 other, 4 vocals.
fn track(track: usize) -> Audio {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/music_delta_80s_rock.stem.mp4");
    let options = DecodeOptions {
        track: Some(track),
        ..DecodeOptions::default()
    };
    decode_file(&path, &options).unwrap()
}

#[test]
fn the_derived_stems_match_the_songs_own() {
    let stems = engine()
        .separate_all(&track(0), SeparationModel::FourTrackVocal, &mut |_| {})
        .unwrap();
    for stem in &stems {
        let (index, measured) = match stem.stem {
            SourceStem::Vocals => (4, 12.601),
            SourceStem::Drums => (1, 9.748),
            SourceStem::Bass => (2, 6.397),
            SourceStem::Other => (3, 5.873),
            other => panic!("unexpected stem {other:?}"),
        };
        let sdr = global_sdr(&track(index), &stem.audio);
        assert!(sdr > measured - 0.3, "{:?}: {sdr:.3} dB", stem.stem);
    }
}

/// dB of the noise added to the mix that reaches `model`'s output.
fn noise_reaching(model: SeparationModel, kind: NoiseKind) -> f64 {
    let clean = track(0);
    let noisy = add_noise(&clean, kind, 10.0, 7).unwrap();
    let clean_out = engine().separate(&clean, model, &mut |_| {}).unwrap();
    let noisy_out = engine().separate(&noisy, model, &mut |_| {}).unwrap();
    noise_passed_db(&noisy, &clean, &noisy_out, &clean_out)
}

#[test]
fn the_four_track_accompaniment_suppresses_noise_and_hum() {
    // Noise at 10 dB SNR. Measured: white noise reaches the 2-track accompaniment whole
    // (-0.006 dB) and the 4-track one at -6.488 dB; 50 Hz hum at -0.116 and -15.266 dB.
    for (kind, measured) in [
        (NoiseKind::White, -6.488),
        (NoiseKind::Hum { mains_hz: 50.0 }, -15.266),
    ] {
        let two = noise_reaching(SeparationModel::TwoTrackAcc, kind);
        let four = noise_reaching(SeparationModel::FourTrackAcc, kind);
        assert!(
            two > -0.5,
            "{}: {two:.3} dB through the 2-track model",
            kind.name()
        );
        assert!(
            four < measured + 0.3,
            "{}: {four:.3} dB through the 4-track model",
            kind.name()
        );
    }
}
