//! Decoding: any supported input to [`Audio`] at [`PROCESSING_RATE`] in stereo.
//!
//! Containers and codecs are symphonia's (wav with 8/16/24/32-bit integer or float PCM,
//! mp3, aac in ADTS or MP4/m4a, flac, ogg/vorbis); headerless 16-bit little-endian PCM is
//! read when its rate and channel count are given ([`RawPcm`]). Mono input is duplicated
//! to both sides, more than two channels are downmixed, and other rates are resampled
//! with rubato. Every failure is a [`DecodeError`]; no input makes this crate panic.

mod symphonia_source;

use stemscribe_audio::{Audio, AudioError, PROCESSING_RATE};
use thiserror::Error;

pub use symphonia_source::probe_duration_secs;

/// Why input could not be decoded.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The input holds no bytes at all.
    #[error("the input is empty")]
    Empty,
    /// The bytes are not a container or codec this crate reads.
    #[error("unrecognised or unsupported audio format: {0}")]
    Unsupported(String),
    /// The container has no audio track, or not the one asked for.
    #[error("no audio track {0}")]
    NoTrack(String),
    /// The stream is damaged beyond recovery.
    #[error("malformed audio: {0}")]
    Malformed(String),
    /// The stream ends well before the length its header declares.
    #[error("truncated audio: {decoded} of {declared} frames present")]
    Truncated {
        /// Frames decoded.
        decoded: u64,
        /// Frames the header declares.
        declared: u64,
    },
    /// The stream decodes to no samples.
    #[error("the input contains no audio samples")]
    NoSamples,
    /// The stream declares an impossible sample rate or channel count.
    #[error("invalid stream parameters: {0}")]
    InvalidParameters(#[from] AudioError),
    /// The audio is longer than the limit given in [`DecodeOptions::max_duration_secs`].
    #[error("the audio lasts {seconds:.1} s, more than the limit of {limit:.0} s")]
    TooLong {
        /// The (possibly partial) duration found.
        seconds: f64,
        /// The limit.
        limit: f64,
    },
    /// Reading the input failed.
    #[error("cannot read the input: {0}")]
    Io(#[from] std::io::Error),
}

/// Headerless PCM: interleaved signed 16-bit little-endian samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPcm {
    /// Samples per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
}

/// How to decode.
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    /// File extension or format name that helps recognise the container (`"mp3"`, `"m4a"`).
    pub format_hint: Option<String>,
    /// Decode the track at this index instead of the default audio track (multi-stream files).
    pub track: Option<usize>,
    /// Fail with [`DecodeError::TooLong`] above this duration, before decoding when the
    /// container declares its length.
    pub max_duration_secs: Option<f64>,
}

/// Decodes a complete file held in memory to 44.1 kHz stereo.
pub fn decode(bytes: Vec<u8>, options: &DecodeOptions) -> Result<Audio, DecodeError> {
    to_processing_format(decode_native(bytes, options)?)
}

/// Decodes a complete file held in memory at its own sample rate and channel count.
pub fn decode_native(bytes: Vec<u8>, options: &DecodeOptions) -> Result<Audio, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    symphonia_source::decode_native(bytes, options)
}

/// Decodes a file from disk to 44.1 kHz stereo.
pub fn decode_file(path: &std::path::Path, options: &DecodeOptions) -> Result<Audio, DecodeError> {
    let mut options = options.clone();
    if options.format_hint.is_none() {
        options.format_hint = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
    }
    decode(std::fs::read(path)?, &options)
}

/// Decodes headerless 16-bit little-endian PCM to 44.1 kHz stereo.
pub fn decode_raw_pcm(
    bytes: &[u8],
    format: RawPcm,
    max_duration_secs: Option<f64>,
) -> Result<Audio, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let channels = usize::from(format.channels);
    let probe = Audio::new(format.sample_rate, vec![Vec::new(); channels])?;
    let frame_bytes = 2 * probe.num_channels();
    if bytes.len() % frame_bytes != 0 {
        return Err(DecodeError::Malformed(format!(
            "{} bytes is not a whole number of {}-channel 16-bit frames",
            bytes.len(),
            channels
        )));
    }
    let seconds = (bytes.len() / frame_bytes) as f64 / f64::from(format.sample_rate);
    check_duration(seconds, max_duration_secs)?;
    let samples: Vec<f32> = bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0)
        .collect();
    to_processing_format(Audio::from_interleaved(
        format.sample_rate,
        channels,
        &samples,
    )?)
}

/// Converts decoded audio at its native rate and layout to 44.1 kHz stereo.
fn to_processing_format(audio: Audio) -> Result<Audio, DecodeError> {
    if audio.frames() == 0 {
        return Err(DecodeError::NoSamples);
    }
    Ok(audio.remix(2)?.resample(PROCESSING_RATE)?)
}

fn check_duration(seconds: f64, limit: Option<f64>) -> Result<(), DecodeError> {
    match limit {
        Some(limit) if seconds > limit => Err(DecodeError::TooLong { seconds, limit }),
        _ => Ok(()),
    }
}
