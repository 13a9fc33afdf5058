//! The Spleeter model reproduces the reference PyTorch outputs and separates a real song.
//! Needs the runtime and models from `scripts/setup.sh`.

use std::path::PathBuf;

use stemscribe_audio::Audio;
use stemscribe_decode::{decode_file, DecodeOptions};
use stemscribe_eval::global_sdr;
use stemscribe_runtime::{Runtime, RuntimeConfig};
use stemscribe_separate::{ModelSpec, SeparationOptions, Separator};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

fn load(name: &str) -> Audio {
    decode_file(&data(name), &DecodeOptions::default()).unwrap()
}

fn separator() -> Separator {
    let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
    Separator::new(&runtime, ModelSpec::spleeter_2stems()).unwrap()
}

#[test]
fn reference_mode_matches_pytorch_spleeter() {
    let mix = load("rock_mix.wav");
    let stems = separator()
        .separate_with(&mix, &SeparationOptions::spleeter_reference(), &mut |_| {})
        .unwrap();
    for (stem, name) in stems
        .iter()
        .zip(["rock_vocals.wav", "rock_accompaniment.wav"])
    {
        assert_eq!(stem.frames(), mix.frames());
        let sdr = global_sdr(&load(name), stem);
        assert!(sdr >= 40.0, "{name}: SDR {sdr:.1} dB against the reference");
    }
}

fn stem_track(track: usize) -> Audio {
    let options = DecodeOptions {
        track: Some(track),
        ..DecodeOptions::default()
    };
    decode_file(&data("music_delta_80s_rock.stem.mp4"), &options).unwrap()
}

#[test]
fn separates_a_real_song_against_its_stems() {
    let mix = stem_track(0);
    let vocals = stem_track(4);
    let accompaniment = Audio::sum(&[stem_track(1), stem_track(2), stem_track(3)]).unwrap();
    let mut calls = 0;
    let stems = separator()
        .separate_with(&mix, &SeparationOptions::default(), &mut |p| {
            calls += 1;
            assert!(p.done <= p.total);
        })
        .unwrap();
    assert!(calls >= 1);
    let vocal_sdr = global_sdr(&vocals, &stems[0]);
    let accompaniment_sdr = global_sdr(&accompaniment, &stems[1]);
    assert!(vocal_sdr > 10.5, "vocals SDR {vocal_sdr:.2} dB");
    assert!(
        accompaniment_sdr > 12.0,
        "accompaniment SDR {accompaniment_sdr:.2} dB"
    );
}

#[test]
fn rejects_input_that_is_not_44k_stereo() {
    let mono = Audio::new(44_100, vec![vec![0.0; 1_000]]).unwrap();
    assert!(separator()
        .separate_with(&mono, &SeparationOptions::default(), &mut |_| {})
        .is_err());
}

#[test]
fn wiener_refinement_keeps_quality() {
    let mix = stem_track(0);
    let vocals = stem_track(4);
    let options = SeparationOptions {
        wiener: true,
        ..SeparationOptions::default()
    };
    let stems = separator()
        .separate_with(&mix, &options, &mut |_| {})
        .unwrap();
    let vocal_sdr = global_sdr(&vocals, &stems[0]);
    assert!(
        vocal_sdr > 11.0,
        "vocals SDR {vocal_sdr:.2} dB with the Wiener filter"
    );
}
