//! Annotated test songs: a voice whose notes are known over an accompaniment, at a chosen
//! level.

use stemscribe_audio::{Audio, AudioError};
use thiserror::Error;

use crate::noise::{add_scaled, level_gain};

/// Why a voice and an accompaniment could not be mixed.
#[derive(Debug, Error, PartialEq)]
pub enum MixError {
    /// One of them is digital silence, so no level can be set.
    #[error("the voice or the accompaniment is silent")]
    Silent,
    /// They differ in rate or channel count.
    #[error(transparent)]
    Audio(#[from] AudioError),
}

/// `voice` plus `backing` looped or cut to the voice's length, the voice `voice_db` above the
/// backing in RMS; returns the mix and the gain applied to the backing. Both must share rate
/// and channel count.
pub fn mix_over(voice: &Audio, backing: &Audio, voice_db: f64) -> Result<(Audio, f32), MixError> {
    if voice.sample_rate() != backing.sample_rate() {
        return Err(AudioError::SampleRate(backing.sample_rate()).into());
    }
    if voice.num_channels() != backing.num_channels() {
        return Err(AudioError::ChannelCount(backing.num_channels()).into());
    }
    let frames = voice.frames();
    let looped: Vec<Vec<f32>> = backing
        .channels()
        .iter()
        .map(|c| c.iter().copied().cycle().take(frames).collect())
        .collect();
    let gain = level_gain(voice.channels(), &looped, voice_db)
        .filter(|&gain| gain > 0.0)
        .ok_or(MixError::Silent)?;
    Ok((add_scaled(voice, &looped, gain)?, gain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backing_is_looped_and_levelled() {
        let voice = Audio::new(8_000, vec![vec![1.0, -1.0, 1.0, -1.0, 1.0]]).unwrap();
        let backing = Audio::new(8_000, vec![vec![0.5, -0.5]]).unwrap();
        let (mix, gain) = mix_over(&voice, &backing, 6.0).unwrap();
        assert!((f64::from(gain) - 2.0 / 10f64.powf(0.3)).abs() < 1e-6);
        assert_eq!(mix.frames(), 5);
        let silent = Audio::new(8_000, vec![vec![0.0; 4]]).unwrap();
        assert_eq!(
            mix_over(&voice, &silent, 0.0).unwrap_err(),
            MixError::Silent
        );
    }
}
