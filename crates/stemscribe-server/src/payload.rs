//! The `payload` JSON of each namespace, read leniently (unknown fields ignored) but typed:
//! a field of the wrong type is `IllegalPayload`, a value out of range `InvalidPayload`.

use serde::Deserialize;

/// `audio_info`: how to read `data`.
#[derive(Debug, Default, Deserialize)]
pub struct AudioInfo {
    /// `wav`, `mp3`, `aac` or `pcm` (raw interleaved little-endian 16-bit).
    pub format: Option<String>,
    /// Needed for pcm; a hint otherwise.
    pub sample_rate: Option<u32>,
    /// Needed for pcm; a hint otherwise.
    pub channel: Option<u16>,
}

/// `extra` of `MusicSourceSeparate`.
#[derive(Debug, Default, Deserialize)]
pub struct SeparateExtra {
    /// `wav`, `mp3` or `aac`.
    pub output_format: Option<String>,
    /// Output rate in Hz.
    pub output_sample_rate: Option<u32>,
    /// 1 or 2.
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
