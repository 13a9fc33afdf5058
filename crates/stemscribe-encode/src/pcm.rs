//! Float samples to interleaved 16-bit integers, for 16-bit WAV and the lossy encoders.

use stemscribe_audio::Audio;

/// Interleaves `audio` as 16-bit samples; returns them with the number that were clipped.
pub(crate) fn interleaved_i16(audio: &Audio) -> (Vec<i16>, u64) {
    let mut clipped = 0;
    let mut samples = Vec::with_capacity(audio.frames() * audio.num_channels());
    for i in 0..audio.frames() {
        for channel in audio.channels() {
            let sample = channel[i];
            if sample.abs() > 1.0 {
                clipped += 1;
            }
            samples.push(to_i16(sample));
        }
    }
    (samples, clipped)
}

/// Full scale maps to ±32767; beyond it clips; NaN becomes silence.
fn to_i16(sample: f32) -> i16 {
    if sample.is_nan() {
        0
    } else {
        (sample.clamp(-1.0, 1.0) * 32_767.0).round() as i16
    }
}
