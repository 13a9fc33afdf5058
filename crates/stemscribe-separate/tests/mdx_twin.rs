//! UVR MDX-Net models run as python-audio-separator runs them: a random-weight twin made by
//! `scripts/test/make_mdx_twin.py` (run by `scripts/setup.sh`) separates its test clip into the
//! stems the script's numpy re-implementation of the reference gives, to at least 80 dB SDR
//! (they agree to about 130 dB; a convention off, e.g. bins 0-2 not zeroed, gives 31 dB).

use std::path::PathBuf;

use stemscribe_audio::Audio;
use stemscribe_eval::global_sdr;
use stemscribe_runtime::{Runtime, RuntimeConfig};
use stemscribe_separate::{uvr_hash, MdxModel, MdxOptions, MdxParams, MdxParamsError, MdxStem};

mod common;

fn twin_dir() -> PathBuf {
    common::installed().join("mdx-twin")
}

fn read_stereo(name: &str) -> Audio {
    common::read_stereo(&twin_dir().join(name))
}

fn runtime() -> Runtime {
    Runtime::new(&RuntimeConfig {
        models_dir: Some(twin_dir()),
        library: Some(twin_dir().join("../lib/libonnxruntime.so")),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

fn check(denoise: bool, suffix: &str) {
    let file = twin_dir().join("mdx-twin.onnx");
    let params = MdxParams::for_model(&file).unwrap();
    assert_eq!(params.primary, MdxStem::Vocals);
    assert_eq!((params.n_fft, params.dim_f, params.dim_t), (2048, 512, 32));
    let model = MdxModel::new(&runtime(), &file, params).unwrap();
    let input = read_stereo("input.f32");
    let mut calls = 0;
    let stems = model
        .separate_with(&input, &MdxOptions { denoise }, &mut |p| {
            calls += 1;
            assert_eq!(p.done, calls);
        })
        .unwrap();
    assert_eq!(calls, model.chunks(input.frames()));
    assert!(calls > 3, "{calls} chunks: the clip should span several");
    for (name, ours) in [("primary", &stems.primary), ("secondary", &stems.secondary)] {
        let reference = read_stereo(&format!("{name}{suffix}.f32"));
        assert_eq!(ours.frames(), reference.frames());
        let sdr = global_sdr(&reference, ours);
        assert!(sdr >= 80.0, "{name}{suffix}: {sdr:.1} dB");
    }
}

#[test]
fn the_twin_separates_like_the_reference() {
    check(false, "");
}

#[test]
fn denoising_runs_the_network_on_both_signs_like_the_reference() {
    check(true, "-denoise");
}

#[test]
fn an_unknown_model_without_parameters_is_refused_with_its_hash() {
    let dir = std::env::temp_dir().join(format!("stemscribe-mdx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mystery.onnx");
    std::fs::copy(twin_dir().join("mdx-twin.onnx"), &file).unwrap();
    let error = MdxParams::for_model(&file).unwrap_err();
    let hash = uvr_hash(&file).unwrap();
    assert!(matches!(error, MdxParamsError::Unknown { .. }), "{error}");
    assert!(error.to_string().contains(&hash), "{error}");
    std::fs::write(dir.join("mystery.json"), r#"{"compensate": 1.0, "mdx_dim_f_set": 9999, "mdx_dim_t_set": 5, "mdx_n_fft_scale_set": 2048, "primary_stem": "Vocals"}"#).unwrap();
    let error = MdxParams::for_model(&file).unwrap_err();
    assert!(error.to_string().contains("mdx_dim_f_set 9999"), "{error}");
    // Within each field's range, but 32769 x 4096 values a chunk (a 2 GB input): refused.
    std::fs::write(dir.join("mystery.json"), r#"{"compensate": 1.0, "mdx_dim_f_set": 32769, "mdx_dim_t_set": 12, "mdx_n_fft_scale_set": 65536, "primary_stem": "Vocals"}"#).unwrap();
    let error = MdxParams::for_model(&file).unwrap_err();
    assert!(error.to_string().contains("values a chunk"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}
