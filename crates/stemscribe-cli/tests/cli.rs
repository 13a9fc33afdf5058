//! The `stemscribe` binary as a user runs it. Needs `scripts/setup.sh` to have run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

fn stemscribe(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stemscribe"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stemscribe-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wav_shape(path: &Path) -> (hound::WavSpec, u32) {
    let reader = hound::WavReader::open(path).unwrap();
    (reader.spec(), reader.duration())
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

#[test]
fn writes_the_requested_stem_format() {
    let dir = temp_dir("output");
    let out = dir.join("vocals.wav");
    let result = stemscribe(&[
        os("separate"),
        data("rock_mix.wav").as_os_str(),
        os("--model"),
        os("2track_vocal"),
        os("-o"),
        out.as_os_str(),
        os("--sample-rate"),
        os("22050"),
        os("--channels"),
        os("1"),
        os("--quiet"),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(result.stderr.is_empty(), "--quiet printed something");
    let (spec, frames) = wav_shape(&out);
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (22_050, 1, 16)
    );
    assert_eq!(frames, 132_300 / 2);
    assert!(!dir.join("vocals.wav.partial").exists());
}

#[test]
fn writes_every_stem_as_float_stereo_of_the_input_length() {
    let dir = temp_dir("stems");
    let result = stemscribe(&[
        os("separate"),
        data("rock_mix.wav").as_os_str(),
        os("--model"),
        os("2track_acc"),
        os("--stems"),
        dir.as_os_str(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    for stem in ["vocals.wav", "accompaniment.wav"] {
        let (spec, frames) = wav_shape(&dir.join(stem));
        assert_eq!(spec.sample_format, hound::SampleFormat::Float);
        assert_eq!(
            (spec.sample_rate, spec.channels, frames),
            (44_100, 2, 132_300)
        );
    }
}

fn assert_one_line_error(result: &Output, code: i32, needle: &str) {
    assert_eq!(result.status.code(), Some(code));
    let stderr = String::from_utf8_lossy(&result.stderr);
    if code == 1 {
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
    assert!(stderr.contains(needle), "{stderr}");
}

#[test]
fn bad_input_fails_with_one_clear_line() {
    let dir = temp_dir("bad");
    let garbage = dir.join("garbage.mp3");
    std::fs::write(&garbage, b"this is not audio at all, not even close").unwrap();
    let out = dir.join("out.wav");
    let result = stemscribe(&[
        os("separate"),
        garbage.as_os_str(),
        os("-o"),
        out.as_os_str(),
    ]);
    assert_one_line_error(&result, 1, "cannot decode");
    assert!(!out.exists());

    let missing = dir.join("missing.wav");
    let result = stemscribe(&[
        os("separate"),
        missing.as_os_str(),
        os("-o"),
        out.as_os_str(),
    ]);
    assert_one_line_error(&result, 1, "missing.wav");
}

#[test]
fn usage_errors_exit_with_2() {
    let input = data("rock_mix.wav");
    let result = stemscribe(&[
        os("separate"),
        input.as_os_str(),
        os("--model"),
        os("5track"),
        os("-o"),
        os("x.wav"),
    ]);
    assert_one_line_error(&result, 2, "unknown model");
    let result = stemscribe(&[os("separate"), input.as_os_str()]);
    assert_eq!(result.status.code(), Some(2));
    let result = stemscribe(&[
        os("separate"),
        input.as_os_str(),
        os("-o"),
        os("x.wav"),
        os("--channels"),
        os("3"),
    ]);
    assert_eq!(result.status.code(), Some(2));
}

#[test]
fn raw_pcm_input() {
    let dir = temp_dir("pcm");
    let pcm = dir.join("tone.pcm");
    let bytes: Vec<u8> = (0..16_000 * 2)
        .flat_map(|i: i32| (((i as f32 * 0.05).sin() * 8_000.0) as i16).to_le_bytes())
        .collect();
    std::fs::write(&pcm, bytes).unwrap();
    let out = dir.join("out.wav");
    let result = stemscribe(&[
        os("separate"),
        pcm.as_os_str(),
        os("--pcm-rate"),
        os("16000"),
        os("--pcm-channels"),
        os("1"),
        os("-o"),
        out.as_os_str(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let (spec, frames) = wav_shape(&out);
    assert_eq!(
        (spec.sample_rate, spec.channels, frames),
        (44_100, 2, 88_200)
    );
}
