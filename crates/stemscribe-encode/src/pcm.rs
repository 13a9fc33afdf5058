//! Float samples to interleaved 16-bit integers, for 16-bit WAV and the lossy encoders.

use stemscribe_audio::Audio;

/// Converts samples to 16 bits and counts those beyond full scale.
#[derive(Debug, Default)]
pub(crate) struct ToI16 {
    /// Samples clipped so far.
    pub clipped: u64,
}

impl ToI16 {
    /// Full scale maps to ±32767; beyond it clips (and is counted); NaN becomes silence.
    pub fn convert(&mut self, sample: f32) -> i16 {
        if sample.abs() > 1.0 {
            self.clipped += 1;
        }
        if sample.is_nan() {
            0
        } else {
            (sample.clamp(-1.0, 1.0) * 32_767.0).round() as i16
        }
    }
}

/// The samples of `audio`, frame by frame, channels interleaved.
pub(crate) fn interleaved(audio: &Audio) -> impl Iterator<Item = f32> + '_ {
    (0..audio.frames()).flat_map(move |i| audio.channels().iter().map(move |c| c[i]))
}
