//! Quality metrics, implemented as the field's reference tools define them: global SDR
//! (music demixing challenges) for separation, mir_eval's note metrics for transcription;
//! the test noise of the denoising evaluation, and voices mixed over accompaniments.

mod mixing;
mod noise;
mod separation;
mod transcription;

pub use mixing::{mix_over, MixError};
pub use noise::{add_babble, add_noise, NoiseKind};
pub use separation::{global_sdr, noise_passed_db};
pub use stemscribe_audio::rms;
pub use transcription::{
    match_notes, pitch_ceiling, read_notes_csv, score_notes, EvalNote, NoteCsvError, NoteScores,
    Tolerances, TranscriptionScores,
};
