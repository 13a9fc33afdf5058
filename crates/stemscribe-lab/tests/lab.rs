//! The `stemscribe-lab` binary as a developer runs it: the metrics it prints and the corpus
//! report it writes. Needs `scripts/setup.sh` to have run.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

/// Runs the binary on the CPU.
fn lab<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stemscribe-lab"))
        .args(["--device", "cpu"])
        .args(args)
        .output()
        .expect("the binary runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stemscribe-lab-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn os(s: &str) -> &OsStr {
    s.as_ref()
}

#[test]
fn transcription_prints_the_three_metrics() {
    let dir = temp_dir("evalnotes");
    let estimate = dir.join("estimate.json");
    // Two of the three reference notes, one with its onset 30 ms late and a flat pitch.
    std::fs::write(
        &estimate,
        r#"{"midiList":[{"start":0.5,"end":1.0,"pitch":69.0,"velocity":90},{"start":1.53,"end":2.0,"pitch":70.3,"velocity":90}],"track":"vocal","confidence":0.9}"#,
    )
    .unwrap();
    let reference = dir.join("reference.csv");
    std::fs::write(
        &reference,
        "0.5,440.0,0.5\n1.5,493.883,0.5\n3.0,440.0,1.0\n",
    )
    .unwrap();
    let result = lab(&[
        os("transcription"),
        os("--reference"),
        reference.as_os_str(),
        os("--estimate"),
        estimate.as_os_str(),
    ]);
    assert!(result.status.success());
    let stdout = String::from_utf8_lossy(&result.stdout);
    // COn: 2 of 2 estimates, 2 of 3 references → F1 0.8. COnP: the second note is 70 cents
    // flat → 1 match → P 0.5, R 0.333, F1 0.4.
    assert!(
        stdout.contains("COn          1.000     0.667     0.800"),
        "{stdout}"
    );
    assert!(
        stdout.contains("COnP         0.500     0.333     0.400"),
        "{stdout}"
    );
    assert!(
        stdout.contains("COnPOff      0.500     0.333     0.400"),
        "{stdout}"
    );
}

#[test]
fn corpus_reports_decisions_and_notes_on_a_two_clip_corpus() {
    // A corpus of one annotated sung clip and one spoken one, in the corpus's layout.
    let corpus = temp_dir("corpus");
    for folder in ["sung_solo", "speech"] {
        std::fs::create_dir_all(corpus.join(folder)).unwrap();
    }
    std::fs::copy(
        data("vocadito_1.flac"),
        corpus.join("sung_solo/vocadito_1.flac"),
    )
    .unwrap();
    let notes: String = std::fs::read_to_string(data("vocadito_1_notesA1.csv"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<f64> = line.split(',').map(|x| x.trim().parse().unwrap()).collect();
            let midi = 69.0 + 12.0 * (f[1] / 440.0).log2();
            format!("{}\t{}\t{midi}\n", f[0], f[0] + f[2])
        })
        .collect();
    std::fs::write(corpus.join("sung_solo/vocadito_1.notes.txt"), notes).unwrap();
    std::fs::copy(
        data("speech_arctic_a0007.wav"),
        corpus.join("speech/speech_arctic_a0007.wav"),
    )
    .unwrap();
    let features = corpus.join("features.csv");
    let result = lab(&[
        os("corpus"),
        os("--corpus"),
        corpus.as_os_str(),
        os("--features"),
        features.as_os_str(),
    ]);
    let report = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        report.contains("| solo | sung | 1 | 1 | 0 | 0 | 1/1 |"),
        "{report}"
    );
    assert!(report.contains("| speech | speech | 1 | 0 |"), "{report}");
    let solo = report
        .lines()
        .find(|l| l.starts_with("| solo | 1 |"))
        .unwrap_or_else(|| panic!("{report}"));
    let field = |n: usize| -> f64 { solo.split('|').nth(n).unwrap().trim().parse().unwrap() };
    // COn, COnP, COnPOff measured 0.877, 0.842, 0.772 (2026-12-04, 9862d97), as the engine's
    // own test of this clip.
    assert!(field(3) >= 0.86, "{solo}");
    assert!(field(4) >= 0.83, "{solo}");
    assert!(field(5) >= 0.76, "{solo}");
    // One feature line per clip: the two clips and their 2 s and 5 s excerpts.
    let csv = std::fs::read_to_string(features).unwrap();
    assert_eq!(csv.lines().count(), 1 + 5, "{csv}");
}
