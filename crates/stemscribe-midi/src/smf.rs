//! Standard MIDI Files: one track named `vocal` on channel 1, 960 ticks per beat at 120 BPM
//! (one tick is 0.52 ms, so every time is within 0.26 ms of the note's), each note on the
//! nearest key with an optional pitch bend carrying the rest of its fractional pitch.

use midly::num::{u14, u15, u24, u28, u4, u7};
use midly::{
    Format, Header, MetaMessage, MidiMessage, PitchBend, Smf, Timing, TrackEvent, TrackEventKind,
};

use crate::{Transcription, TRACK_NAME};

/// Ticks per quarter note.
pub const TICKS_PER_BEAT: u16 = 960;
/// Microseconds per quarter note (120 BPM).
pub const TEMPO_MICROS_PER_BEAT: u32 = 500_000;
/// The pitch-bend range the file sets with RPN 0, in semitones each way.
pub const BEND_RANGE_SEMITONES: u8 = 2;

const CHANNEL: u8 = 0;
const BEND_CENTRE: f64 = 8192.0;

/// Choices for [`to_smf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmfOptions {
    /// Bend each note from its key to its fractional pitch (on by default).
    pub pitch_bend: bool,
}

impl Default for SmfOptions {
    fn default() -> Self {
        Self { pitch_bend: true }
    }
}

/// The Standard MIDI File (format 0) of `transcription`'s notes.
pub fn to_smf(transcription: &Transcription, options: &SmfOptions) -> Vec<u8> {
    let mut events: Vec<(u64, u8, TrackEventKind<'static>)> = Vec::new();
    let mut notes = transcription.notes.clone();
    notes.sort_by(|a, b| a.start.total_cmp(&b.start));
    for note in &notes {
        let key = note.pitch.round().clamp(0.0, 127.0);
        let start = ticks(note.start);
        let end = ticks(note.end).max(start + 1);
        let key7 = u7::new(key as u8);
        if options.pitch_bend {
            events.push((
                start,
                1,
                midi(MidiMessage::PitchBend {
                    bend: bend(note.pitch - key),
                }),
            ));
        }
        let vel = u7::new(note.velocity.clamp(1, 127));
        events.push((start, 2, midi(MidiMessage::NoteOn { key: key7, vel })));
        events.push((
            end,
            0,
            midi(MidiMessage::NoteOff {
                key: key7,
                vel: u7::new(0),
            }),
        ));
    }
    // At one tick, a note ends before the next one bends and starts.
    events.sort_by_key(|(tick, order, _)| (*tick, *order));

    let mut track = vec![
        at_zero(TrackEventKind::Meta(MetaMessage::TrackName(
            TRACK_NAME.as_bytes(),
        ))),
        at_zero(TrackEventKind::Meta(MetaMessage::Tempo(u24::new(
            TEMPO_MICROS_PER_BEAT,
        )))),
    ];
    if options.pitch_bend {
        track.extend(bend_range_events().into_iter().map(at_zero));
    }
    let mut previous = 0;
    for (tick, _, kind) in events {
        track.push(TrackEvent {
            delta: u28::new((tick - previous) as u32),
            kind,
        });
        previous = tick;
    }
    track.push(at_zero(TrackEventKind::Meta(MetaMessage::EndOfTrack)));

    let smf = Smf {
        header: Header::new(
            Format::SingleTrack,
            Timing::Metrical(u15::new(TICKS_PER_BEAT)),
        ),
        tracks: vec![track],
    };
    let mut bytes = Vec::new();
    // Writing to memory fails only for values out of range, and every value is in range.
    smf.write_std(&mut bytes).unwrap_or_default();
    bytes
}

/// Ticks from the file's start to `seconds` (at most 10 minutes, far below the 28-bit limit).
fn ticks(seconds: f64) -> u64 {
    let per_second = f64::from(TICKS_PER_BEAT) * 1e6 / f64::from(TEMPO_MICROS_PER_BEAT);
    (seconds.max(0.0) * per_second).round() as u64
}

/// The 14-bit bend that raises a key by `semitones` (within the bend range).
fn bend(semitones: f64) -> PitchBend {
    let value = BEND_CENTRE + semitones / f64::from(BEND_RANGE_SEMITONES) * BEND_CENTRE;
    PitchBend(u14::new(value.round().clamp(0.0, 16383.0) as u16))
}

fn midi(message: MidiMessage) -> TrackEventKind<'static> {
    TrackEventKind::Midi {
        channel: u4::new(CHANNEL),
        message,
    }
}

fn at_zero(kind: TrackEventKind<'_>) -> TrackEvent<'_> {
    TrackEvent {
        delta: u28::new(0),
        kind,
    }
}

/// RPN 0 (pitch-bend sensitivity) set to [`BEND_RANGE_SEMITONES`], then the null RPN.
fn bend_range_events() -> Vec<TrackEventKind<'static>> {
    [
        (101, 0),
        (100, 0),
        (6, BEND_RANGE_SEMITONES),
        (38, 0),
        (101, 127),
        (100, 127),
    ]
    .into_iter()
    .map(|(controller, value)| {
        midi(MidiMessage::Controller {
            controller: u7::new(controller),
            value: u7::new(value),
        })
    })
    .collect()
}
