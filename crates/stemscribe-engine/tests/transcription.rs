//! Transcription end to end on real recordings: sung input gives notes close to a human
//! annotation, instrumental music and speech give `NoOutput`. Needs the runtime and models
//! from `scripts/setup.sh`.

use std::path::PathBuf;
use std::sync::OnceLock;

use stemscribe_engine::transcribe::DecisionModel;
use stemscribe_engine::{
    decode_file, Audio, DecodeOptions, Engine, EngineConfig, EngineError, NoOutput, Progress,
    Transcription,
};
use stemscribe_eval::{read_notes_csv, score_notes, EvalNote, Tolerances, TranscriptionScores};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

fn load(name: &str, track: Option<usize>) -> Audio {
    let options = DecodeOptions {
        track,
        ..DecodeOptions::default()
    };
    decode_file(&data(name), &options).unwrap()
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(&EngineConfig::default()).unwrap())
}

/// Note metrics of `melody` against vocadito_1's annotator A1.
fn against_vocadito_a1(melody: &Transcription) -> TranscriptionScores {
    let reference =
        read_notes_csv(&std::fs::read_to_string(data("vocadito_1_notesA1.csv")).unwrap()).unwrap();
    let estimate: Vec<EvalNote> = melody.notes.iter().map(EvalNote::from).collect();
    score_notes(&reference, &estimate, &Tolerances::default())
}

#[test]
fn solo_singing_matches_the_annotation() {
    let voice = load("vocadito_1.flac", None);
    let melody = engine().transcribe_voice(&voice, &mut |_| {}).unwrap();
    let scores = against_vocadito_a1(&melody);
    // Measured 0.842 and 0.772, confidence 0.732 (2026-12-04, 9862d97).
    assert!(scores.conp.f1 >= 0.83, "COnP {:?}", scores.conp);
    assert!(scores.conpoff.f1 >= 0.76, "COnPOff {:?}", scores.conpoff);
    assert!(melody.confidence > 0.71, "confidence {}", melody.confidence);
}

#[test]
fn a_quiet_recording_is_transcribed_as_a_loud_one() {
    // vocadito's loud part lies at −32 dBFS; 30 dB lower, the tracker's silence gate and
    // voicing lost most notes until transcription raised quiet inputs to −35 dBFS.
    let voice = load("vocadito_1.flac", None);
    let quiet = Audio::new(
        voice.sample_rate(),
        voice
            .channels()
            .iter()
            .map(|c| c.iter().map(|s| s * 10f32.powf(-30.0 / 20.0)).collect())
            .collect(),
    )
    .unwrap();
    let melody = engine().transcribe_voice(&quiet, &mut |_| {}).unwrap();
    let scores = against_vocadito_a1(&melody);
    // Measured 0.825 and 0.754 (2026-12-04, 9862d97), against 0.842 and 0.772 at full level.
    assert!(scores.conp.f1 >= 0.81, "COnP {:?}", scores.conp);
    assert!(scores.conpoff.f1 >= 0.74, "COnPOff {:?}", scores.conpoff);
}

#[test]
fn a_song_gives_notes_with_progress() {
    let mix = load("music_delta_80s_rock.stem.mp4", Some(0));
    let mut seen: Vec<Progress> = Vec::new();
    let melody = engine().transcribe(&mix, &mut |p| seen.push(p)).unwrap();
    // The notes of the mix against those of its isolated vocal stem: measured 9 notes against
    // 10, COnP 0.842, COnPOff 0.737 (2026-12-04, 9862d97); one note lost or misplaced fails.
    let stem = load("music_delta_80s_rock.stem.mp4", Some(4));
    let stem = engine().transcribe_voice(&stem, &mut |_| {}).unwrap();
    let reference: Vec<EvalNote> = stem.notes.iter().map(EvalNote::from).collect();
    let estimate: Vec<EvalNote> = melody.notes.iter().map(EvalNote::from).collect();
    let scores = score_notes(&reference, &estimate, &Tolerances::default());
    assert!(scores.conp.f1 >= 0.82, "COnP {:?}", scores.conp);
    assert!(scores.conpoff.f1 >= 0.72, "COnPOff {:?}", scores.conpoff);
    assert!(melody.confidence >= DecisionModel::bundled().threshold());
    let last = seen.last().expect("progress reported");
    assert_eq!(last.done, last.total);
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    for note in &melody.notes {
        assert!(note.start >= 0.0 && note.end <= mix.duration_secs() + 0.02);
    }
}

#[test]
fn instrumental_music_is_no_output() {
    let accompaniment = Audio::sum(&[
        load("music_delta_80s_rock.stem.mp4", Some(1)),
        load("music_delta_80s_rock.stem.mp4", Some(2)),
        load("music_delta_80s_rock.stem.mp4", Some(3)),
    ])
    .unwrap();
    let result = engine().transcribe(&accompaniment, &mut |_| {});
    assert!(
        matches!(
            result,
            Err(EngineError::NoOutput(NoOutput::Instrumental { .. }))
        ),
        "{result:?}"
    );
}

#[test]
fn speech_is_no_output() {
    let speech = load("speech_arctic_a0007.wav", None);
    let result = engine().transcribe(&speech, &mut |_| {});
    assert!(
        matches!(result, Err(EngineError::NoOutput(NoOutput::Spoken { .. }))),
        "{result:?}"
    );
}

#[test]
fn silence_is_no_output() {
    let silence = Audio::new(44_100, vec![vec![0.0; 44_100 * 3]; 2]).unwrap();
    let result = engine().transcribe(&silence, &mut |_| {});
    assert!(
        matches!(
            result,
            Err(EngineError::NoOutput(NoOutput::Instrumental { .. }))
        ),
        "{result:?}"
    );
}

#[test]
fn a_few_samples_are_no_output_not_a_panic() {
    for frames in [1, 100, 700, 5_000] {
        let tiny = Audio::new(44_100, vec![vec![0.25; frames]; 2]).unwrap();
        let result = engine().transcribe(&tiny, &mut |_| {});
        assert!(
            matches!(result, Err(EngineError::NoOutput(_))),
            "{frames} frames: {result:?}"
        );
    }
}

/// `seconds` of `audio` from `start`.
fn excerpt(audio: &Audio, start: f64, seconds: f64) -> Audio {
    let rate = f64::from(audio.sample_rate());
    audio.section((start * rate) as usize..((start + seconds) * rate) as usize)
}

#[test]
fn two_second_excerpts_are_decided_like_the_whole() {
    // Sung: two seconds of vocadito from just before its first annotated note (0.66 s).
    let sung = excerpt(&load("vocadito_1.flac", None), 0.5, 2.0);
    let melody = engine().transcribe(&sung, &mut |_| {});
    assert!(
        melody.as_ref().is_ok_and(|m| !m.notes.is_empty()),
        "{melody:?}"
    );
    // Spoken and instrumental: two seconds each.
    let speech = excerpt(&load("speech_arctic_a0007.wav", None), 0.5, 2.0);
    let backing = excerpt(&load("music_delta_80s_rock.stem.mp4", Some(1)), 0.0, 2.0);
    for (what, audio) in [("speech", speech), ("drums", backing)] {
        let result = engine().transcribe(&audio, &mut |_| {});
        assert!(
            matches!(result, Err(EngineError::NoOutput(_))),
            "{what}: {result:?}"
        );
    }
}
