//! The `payload` JSON of each namespace, read leniently (unknown fields ignored, whole
//! numbers accepted as `44100.0` too) but typed: a field of the wrong type is
//! `IllegalPayload`, a value out of range `InvalidPayload`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// A whole number that may be written as an integer or as a float with no fraction.
fn whole<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let value = match (number.as_u64(), number.as_f64()) {
        (Some(value), _) => Some(value),
        (None, Some(value)) if value >= 0.0 && value.fract() == 0.0 && value <= u64::MAX as f64 => {
            Some(value as u64)
        }
        _ => None,
    };
    value
        .and_then(|v| T::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| {
            D::Error::custom(format!("expected a whole number in range, found {number}"))
        })
}

/// `audio_info`: how to read `data`.
#[derive(Debug, Default, Deserialize)]
pub struct AudioInfo {
    /// `wav`, `mp3`, `aac` or `pcm` (raw interleaved little-endian 16-bit).
    pub format: Option<String>,
    /// Needed for pcm; a hint otherwise.
    #[serde(default, deserialize_with = "whole")]
    pub sample_rate: Option<u32>,
    /// Needed for pcm; a hint otherwise.
    #[serde(default, deserialize_with = "whole")]
    pub channel: Option<u16>,
}

/// `extra` of `MusicSourceSeparate`.
#[derive(Debug, Default, Deserialize)]
pub struct SeparateExtra {
    /// `wav`, `mp3` or `aac`.
    pub output_format: Option<String>,
    /// Output rate in Hz.
    #[serde(default, deserialize_with = "whole")]
    pub output_sample_rate: Option<u32>,
    /// 1 or 2.
    #[serde(default, deserialize_with = "whole")]
    pub output_channel: Option<u32>,
}

/// The `MusicSourceSeparate` payload.
#[derive(Debug, Default, Deserialize)]
pub struct SeparatePayload {
    /// `2track_vocal`, `2track_acc`, `bs_4track_vocal`, `bs_4track_acc`.
    pub model: Option<String>,
    /// Where to fetch the audio when `data` is empty.
    pub url: Option<String>,
    /// How to read `data`.
    pub audio_info: Option<AudioInfo>,
    /// Output options.
    pub extra: Option<SeparateExtra>,
}

/// `extra` of `MIDI`.
#[derive(Debug, Default, Deserialize)]
pub struct MidiExtra {
    /// true: a Standard MIDI File in `data`; false: the JSON note list in `payload`.
    pub midi: Option<bool>,
}

/// The `MIDI` payload.
#[derive(Debug, Default, Deserialize)]
pub struct MidiPayload {
    /// Where to fetch the audio when `data` is empty.
    pub url: Option<String>,
    /// How to read `data`.
    pub audio_info: Option<AudioInfo>,
    /// Output options.
    pub extra: Option<MidiExtra>,
}
