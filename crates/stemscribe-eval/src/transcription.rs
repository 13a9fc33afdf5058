//! Note-level transcription metrics, as `mir_eval.transcription` computes them.
//!
//! A reference and an estimated note match when their onsets lie within 50 ms, their
//! pitches within 50 cents and (for COnPOff) their offsets within max(50 ms, 20 % of the
//! reference note's duration); distances are rounded to 4 decimals first, as mir_eval does.
//! Each note matches at most one other (a maximum bipartite matching); precision is matches
//! over estimated notes, recall matches over reference notes.

use stemscribe_midi::Note;
use thiserror::Error;

/// One note to compare.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalNote {
    /// Onset in seconds.
    pub onset: f64,
    /// Offset in seconds.
    pub offset: f64,
    /// Pitch in Hz.
    pub pitch_hz: f64,
}

impl From<&Note> for EvalNote {
    fn from(note: &Note) -> Self {
        Self {
            onset: note.start,
            offset: note.end,
            pitch_hz: note.pitch_hz(),
        }
    }
}

/// Matching tolerances; [`Tolerances::default`] is mir_eval's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Largest onset difference in seconds.
    pub onset_secs: f64,
    /// Largest pitch difference in cents.
    pub pitch_cents: f64,
    /// Offset tolerance as a share of the reference note's duration.
    pub offset_ratio: f64,
    /// Smallest offset tolerance in seconds.
    pub offset_min_secs: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self {
            onset_secs: 0.05,
            pitch_cents: 50.0,
            offset_ratio: 0.2,
            offset_min_secs: 0.05,
        }
    }
}

/// Precision, recall and F1 of one kind of match.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NoteScores {
    /// Matched estimates over all estimates.
    pub precision: f64,
    /// Matched references over all references.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
}

/// The three standard note metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TranscriptionScores {
    /// Onset only.
    pub con: NoteScores,
    /// Onset and pitch.
    pub conp: NoteScores,
    /// Onset, pitch and offset.
    pub conpoff: NoteScores,
}

/// Which conditions a match must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Criteria {
    Onset,
    OnsetPitch,
    OnsetPitchOffset,
}

/// COn, COnP and COnPOff of `estimate` against `reference`. Either list empty scores 0.
pub fn score_notes(
    reference: &[EvalNote],
    estimate: &[EvalNote],
    tolerances: &Tolerances,
) -> TranscriptionScores {
    let score = |criteria| {
        let matches = match_with(reference, estimate, tolerances, criteria).len();
        scores(matches, reference.len(), estimate.len())
    };
    TranscriptionScores {
        con: score(Criteria::Onset),
        conp: score(Criteria::OnsetPitch),
        conpoff: score(Criteria::OnsetPitchOffset),
    }
}

/// The (reference, estimate) index pairs of a maximum matching on onset, pitch and, when
/// `with_offset`, offset; sorted by reference index.
pub fn match_notes(
    reference: &[EvalNote],
    estimate: &[EvalNote],
    tolerances: &Tolerances,
    with_offset: bool,
) -> Vec<(usize, usize)> {
    let criteria = if with_offset {
        Criteria::OnsetPitchOffset
    } else {
        Criteria::OnsetPitch
    };
    match_with(reference, estimate, tolerances, criteria)
}

fn match_with(
    reference: &[EvalNote],
    estimate: &[EvalNote],
    tolerances: &Tolerances,
    criteria: Criteria,
) -> Vec<(usize, usize)> {
    let hits: Vec<Vec<usize>> = reference
        .iter()
        .map(|r| {
            (0..estimate.len())
                .filter(|&j| is_hit(r, &estimate[j], tolerances, criteria))
                .collect()
        })
        .collect();
    let mut owner: Vec<Option<usize>> = vec![None; estimate.len()];
    for i in 0..reference.len() {
        let mut visited = vec![false; estimate.len()];
        augment(i, &hits, &mut owner, &mut visited);
    }
    let mut pairs: Vec<(usize, usize)> = owner
        .iter()
        .enumerate()
        .filter_map(|(j, i)| i.map(|i| (i, j)))
        .collect();
    pairs.sort_unstable();
    pairs
}

/// Kuhn's augmenting path from reference `i`; true if it found a free estimate.
fn augment(
    i: usize,
    hits: &[Vec<usize>],
    owner: &mut [Option<usize>],
    visited: &mut [bool],
) -> bool {
    for &j in &hits[i] {
        if visited[j] {
            continue;
        }
        visited[j] = true;
        if owner[j].is_none_or(|other| augment(other, hits, owner, visited)) {
            owner[j] = Some(i);
            return true;
        }
    }
    false
}

fn is_hit(r: &EvalNote, e: &EvalNote, tolerances: &Tolerances, criteria: Criteria) -> bool {
    let onset = round4((r.onset - e.onset).abs()) <= tolerances.onset_secs;
    if !onset || criteria == Criteria::Onset {
        return onset;
    }
    let cents = (1200.0 * (r.pitch_hz.log2() - e.pitch_hz.log2())).abs();
    let pitch = cents <= tolerances.pitch_cents;
    if !pitch || criteria == Criteria::OnsetPitch {
        return pitch;
    }
    let tolerance =
        (tolerances.offset_ratio * (r.offset - r.onset)).max(tolerances.offset_min_secs);
    round4((r.offset - e.offset).abs()) <= tolerance
}

/// Rounds to 4 decimals, halves to even, as numpy's `around` does.
fn round4(x: f64) -> f64 {
    (x * 1e4).round_ties_even() / 1e4
}

fn scores(matches: usize, references: usize, estimates: usize) -> NoteScores {
    if references == 0 || estimates == 0 {
        return NoteScores::default();
    }
    let precision = matches as f64 / estimates as f64;
    let recall = matches as f64 / references as f64;
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    NoteScores {
        precision,
        recall,
        f1,
    }
}

/// The best COnP F1 any note maker that reads `contour` could reach on `reference` when pitch
/// is what caps it: every reference note is given its own onset and offset and, as pitch,
/// the median of the contour's voiced frames inside it, so precision and recall are both the
/// share of notes whose sung pitch lies within the pitch tolerance of the annotated one. A
/// note with no voiced frame inside counts as missed. `contour` holds one pitch in Hz per
/// frame (`None` where unvoiced), frame `i` starting at `i * frame_period` seconds.
///
/// It measures the annotation as much as the tracker: an annotation whose pitches sit above
/// or below the sung ones caps COnP whatever the segmentation does. Without notes it is 0.
pub fn pitch_ceiling(
    reference: &[EvalNote],
    contour: &[Option<f64>],
    frame_period: f64,
    tolerances: &Tolerances,
) -> f64 {
    if reference.is_empty() || frame_period.is_nan() || frame_period <= 0.0 {
        return 0.0;
    }
    let within = reference
        .iter()
        .filter(|note| {
            let first = (note.onset / frame_period).ceil().max(0.0) as usize;
            let end = ((note.offset / frame_period).ceil().max(0.0) as usize).min(contour.len());
            let mut cents: Vec<f64> = contour
                .get(first..end)
                .unwrap_or_default()
                .iter()
                .flatten()
                .filter(|hz| hz.is_finite() && **hz > 0.0)
                .map(|hz| 1200.0 * (hz / note.pitch_hz).log2())
                .collect();
            if cents.is_empty() {
                return false;
            }
            cents.sort_by(f64::total_cmp);
            let middle = cents.len() / 2;
            let median = if cents.len() % 2 == 0 {
                (cents[middle - 1] + cents[middle]) / 2.0
            } else {
                cents[middle]
            };
            median.abs() <= tolerances.pitch_cents
        })
        .count();
    within as f64 / reference.len() as f64
}

/// A line of a note CSV that cannot be read.
#[derive(Debug, Error, PartialEq)]
#[error("line {line}: {reason}")]
pub struct NoteCsvError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Reads notes as `onset_secs,pitch_hz,duration_secs` lines (the vocadito/MedleyDB note
/// annotation format); blank lines are skipped.
pub fn read_notes_csv(text: &str) -> Result<Vec<EvalNote>, NoteCsvError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let error = |reason: String| NoteCsvError {
                line: index + 1,
                reason,
            };
            let fields = line
                .split(',')
                .map(|f| f.trim().parse::<f64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| error(format!("not a number: {e}")))?;
            let [onset, pitch_hz, duration] = fields[..] else {
                return Err(error(format!("expected 3 fields, found {}", fields.len())));
            };
            if !(onset.is_finite() && onset >= 0.0 && duration.is_finite() && duration >= 0.0) {
                return Err(error(
                    "onset and duration must be finite and not negative".into(),
                ));
            }
            if !(pitch_hz.is_finite() && pitch_hz > 0.0) {
                return Err(error("pitch must be a positive frequency".into()));
            }
            Ok(EvalNote {
                onset,
                offset: onset + duration,
                pitch_hz,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(onset: f64, offset: f64, pitch_hz: f64) -> EvalNote {
        EvalNote {
            onset,
            offset,
            pitch_hz,
        }
    }

    const A4: f64 = 440.0;

    #[test]
    fn pitch_ceiling_counts_notes_whose_median_pitch_is_within_tolerance() {
        // Frames of 10 ms; two notes of 1 s each.
        let period = 0.01;
        let reference = [note(0.0, 1.0, A4), note(1.0, 2.0, A4)];
        let cents = |c: f64| Some(A4 * 2f64.powf(c / 1200.0));
        // First note sung 30 cents sharp with a scoop from a semitone below in its first
        // fifth: the median ignores the scoop. Second note sung 70 cents flat throughout.
        let mut contour: Vec<Option<f64>> = (0..100)
            .map(|i| if i < 20 { cents(-100.0) } else { cents(30.0) })
            .collect();
        contour.extend((0..100).map(|_| cents(-70.0)));
        let tolerances = Tolerances::default();
        assert_eq!(
            pitch_ceiling(&reference, &contour, period, &tolerances),
            0.5
        );
        // The same contour against an annotation 70 cents lower gets the second note right
        // and loses the first.
        let flat = A4 * 2f64.powf(-70.0 / 1200.0);
        let lower = [note(0.0, 1.0, flat), note(1.0, 2.0, flat)];
        assert_eq!(pitch_ceiling(&lower, &contour, period, &tolerances), 0.5);
        // Both right once the tolerance admits 100 cents.
        let wide = Tolerances {
            pitch_cents: 100.0,
            ..tolerances
        };
        assert_eq!(pitch_ceiling(&reference, &contour, period, &wide), 1.0);
    }

    #[test]
    fn pitch_ceiling_misses_notes_without_voiced_frames() {
        let reference = [note(0.0, 0.5, A4), note(0.5, 1.0, A4), note(5.0, 6.0, A4)];
        // Voiced at A4 for the first half second only; the contour ends at 1 s, before the
        // third note.
        let contour: Vec<Option<f64>> = (0..100).map(|i| (i < 50).then_some(A4)).collect();
        let ceiling = pitch_ceiling(&reference, &contour, 0.01, &Tolerances::default());
        assert!((ceiling - 1.0 / 3.0).abs() < 1e-12, "{ceiling}");
        assert_eq!(
            pitch_ceiling(&[], &contour, 0.01, &Tolerances::default()),
            0.0
        );
    }

    #[test]
    fn identical_lists_score_one() {
        let notes = [
            note(0.0, 0.5, A4),
            note(0.5, 1.0, 220.0),
            note(2.0, 3.0, 300.0),
        ];
        let s = score_notes(&notes, &notes, &Tolerances::default());
        for m in [s.con, s.conp, s.conpoff] {
            assert_eq!((m.precision, m.recall, m.f1), (1.0, 1.0, 1.0));
        }
    }

    #[test]
    fn tolerances_are_inclusive_at_their_edges() {
        // Onset exactly 50 ms late (after rounding to 4 decimals), pitch exactly 50 cents
        // sharp, offset exactly 20 % of a 1 s note late.
        let reference = [note(1.0, 2.0, A4)];
        let sharp = A4 * 2f64.powf(50.0 / 1200.0);
        let estimate = [note(1.05, 2.2, sharp)];
        let s = score_notes(&reference, &estimate, &Tolerances::default());
        assert_eq!(s.conpoff.f1, 1.0);
        let late = [note(1.0501, 2.0, A4)];
        assert_eq!(
            score_notes(&reference, &late, &Tolerances::default())
                .con
                .f1,
            0.0
        );
    }

    #[test]
    fn hand_computed_case() {
        // Reference: 4 notes. Estimate: 5 notes.
        // r0 ↔ e0: everything right.                      COn COnP COnPOff
        // r1 ↔ e1: onset right, pitch 1 semitone off.     COn
        // r2 ↔ e2: onset and pitch right, offset 0.3 s late on a 0.5 s note (tolerance
        //          0.1 s).                                 COn COnP
        // r3: nothing within 50 ms (e3 is 80 ms early).
        // e4: an extra note.
        let reference = [
            note(0.0, 0.4, A4),
            note(1.0, 1.5, A4),
            note(2.0, 2.5, A4),
            note(3.0, 3.5, A4),
        ];
        let estimate = [
            note(0.01, 0.41, A4),
            note(1.02, 1.5, A4 * 2f64.powf(1.0 / 12.0)),
            note(1.99, 2.8, A4 * 1.01),
            note(2.92, 3.5, A4),
            note(4.0, 4.5, A4),
        ];
        let s = score_notes(&reference, &estimate, &Tolerances::default());
        let expect = |m: NoteScores, matched: f64| {
            let (p, r) = (matched / 5.0, matched / 4.0);
            assert!((m.precision - p).abs() < 1e-12);
            assert!((m.recall - r).abs() < 1e-12);
            assert!((m.f1 - 2.0 * p * r / (p + r)).abs() < 1e-12);
        };
        expect(s.con, 3.0);
        expect(s.conp, 2.0);
        expect(s.conpoff, 1.0);
        // F1 by hand for COnP: P = 2/5, R = 2/4, F = 2·0.4·0.5/0.9 = 0.4444…
        assert!((s.conp.f1 - 0.4 / 0.9).abs() < 1e-12);
    }

    #[test]
    fn matching_is_maximal_not_greedy() {
        // e0 could take r0 or r1; e1 only r0. A greedy first-come matching pairs r0–e0 and
        // leaves e1 alone; the maximum matching pairs r0–e1 and r1–e0.
        let reference = [note(1.00, 1.5, A4), note(1.04, 1.5, A4)];
        let estimate = [note(1.02, 1.5, A4), note(0.96, 1.5, A4)];
        let pairs = match_notes(&reference, &estimate, &Tolerances::default(), false);
        assert_eq!(pairs, vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn empty_lists_score_zero() {
        let notes = [note(0.0, 1.0, A4)];
        let s = score_notes(&notes, &[], &Tolerances::default());
        assert_eq!(s.conp, NoteScores::default());
        let s = score_notes(&[], &notes, &Tolerances::default());
        assert_eq!(s.con, NoteScores::default());
    }

    #[test]
    fn reads_vocadito_csv() {
        let notes =
            read_notes_csv("0.661768707,143.742,0.290249433\n\n1.0,158.441,0.5\n").expect("valid");
        assert_eq!(notes.len(), 2);
        assert!((notes[0].offset - 0.95201814).abs() < 1e-8);
        assert_eq!(notes[1].pitch_hz, 158.441);
        assert_eq!(read_notes_csv("1,2").unwrap_err().line, 1);
        assert_eq!(read_notes_csv("1,2,3\n1,x,3").unwrap_err().line, 2);
        assert!(read_notes_csv("1,0,3").is_err());
    }
}
