//! Decoding: any supported input to [`Audio`] at [`PROCESSING_RATE`](stemscribe_audio::PROCESSING_RATE) in stereo.
//!
//! Containers and codecs are symphonia's (wav with 8/16/24/32-bit integer or float PCM,
//! mp3, aac in ADTS or MP4/m4a, flac, ogg/vorbis); headerless 16-bit little-endian PCM is
//! read when its rate and channel count are given ([`RawPcm`]). Mono input is duplicated
//! to both sides, more than two channels are downmixed, and other rates are resampled
//! with rubato. Every failure is a [`DecodeError`]; no input makes this crate panic.

mod edit_list;
mod symphonia_source;

use stemscribe_audio::timings::{measure, Stage};
use stemscribe_audio::{Audio, AudioError};
use thiserror::Error;

use std::sync::Arc;

pub use symphonia_source::{probe_duration_secs, CODEC_PADDING_ALLOWANCE_SECS};
use symphonia_source::{Input, NativeSink, ProcessingSink, Sink};

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
    #[error("the audio is longer than the limit of {limit:.0} s (at least {seconds:.1} s)")]
    TooLong {
        /// The duration the header declares, or what was decoded when decoding stopped.
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
    /// Fail with [`DecodeError::TooLong`] above this duration (plus
    /// [`CODEC_PADDING_ALLOWANCE_SECS`]): before decoding when the container declares its
    /// length exactly, else as soon as the decoded samples pass it.
    pub max_duration_secs: Option<f64>,
}

/// Decodes a complete file held in memory to 44.1 kHz stereo.
///
/// Memory is bounded by the decoded result, not by the stream: each packet is downmixed and
/// resampled as it is decoded, so at most one packet exists at the stream's own rate and
/// width, and decoding stops as soon as the length passes
/// [`DecodeOptions::max_duration_secs`] (plus [`CODEC_PADDING_ALLOWANCE_SECS`]). MP3 is
/// decoded on up to four threads, in parts of at least 1,000 packets (26 s at 44.1 kHz), to
/// exactly the samples of one decoder; its packets are read first (and the length checked
/// from them before any decoding), and the whole song exists once at its own rate and width
/// before conversion.
pub fn decode(bytes: Vec<u8>, options: &DecodeOptions) -> Result<Audio, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    decode_processing(&Input::Memory(Arc::new(bytes)), options)
}

/// Decodes a complete file held in memory at its own sample rate and channel count.
///
/// Unlike [`decode`] this holds the whole stream at its native rate and width (up to the
/// duration limit), so it is meant for trusted input: tests and tools that check a rate.
pub fn decode_native(bytes: Vec<u8>, options: &DecodeOptions) -> Result<Audio, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut sink = NativeSink::default();
    symphonia_source::decode_into(&Input::Memory(Arc::new(bytes)), options, &mut sink)?;
    sink.finish()
}

/// Decodes a file from disk to 44.1 kHz stereo, reading it as it decodes (see [`decode`]).
pub fn decode_file(path: &std::path::Path, options: &DecodeOptions) -> Result<Audio, DecodeError> {
    let mut options = options.clone();
    if options.format_hint.is_none() {
        options.format_hint = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
    }
    if std::fs::metadata(path)?.len() == 0 {
        return Err(DecodeError::Empty);
    }
    decode_processing(&Input::File(path.to_owned()), &options)
}

fn decode_processing(input: &Input, options: &DecodeOptions) -> Result<Audio, DecodeError> {
    measure(Stage::Decode, || {
        let mut sink = ProcessingSink::default();
        symphonia_source::decode_into(input, options, &mut sink)?;
        sink.finish()
    })
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
    measure(Stage::Decode, || raw_pcm(bytes, format, max_duration_secs))
}

fn raw_pcm(
    bytes: &[u8],
    format: RawPcm,
    max_duration_secs: Option<f64>,
) -> Result<Audio, DecodeError> {
    let channels = usize::from(format.channels);
    let mut sink = ProcessingSink::default();
    // Validates the rate and channel count before anything is sized by them.
    sink.start(format.sample_rate, channels)?;
    let frame_bytes = 2 * channels;
    if bytes.len() % frame_bytes != 0 {
        return Err(DecodeError::Malformed(format!(
            "{} bytes is not a whole number of {}-channel 16-bit frames",
            bytes.len(),
            channels
        )));
    }
    let seconds = (bytes.len() / frame_bytes) as f64 / f64::from(format.sample_rate);
    check_duration(seconds, max_duration_secs, 0.0)?;
    for block in bytes.chunks(frame_bytes * RAW_BLOCK_FRAMES) {
        let mut planes: Vec<Vec<f32>> = (0..channels)
            .map(|c| {
                block
                    .chunks_exact(frame_bytes)
                    .map(|frame| {
                        let at = 2 * c;
                        f32::from(i16::from_le_bytes([frame[at], frame[at + 1]])) / 32_768.0
                    })
                    .collect()
            })
            .collect();
        sink.push(&mut planes)?;
    }
    sink.finish()
}

/// Frames of raw PCM converted at a time.
const RAW_BLOCK_FRAMES: usize = 65_536;

/// Refuses `seconds` past `limit` plus `allowance` (room for codec padding; none for raw PCM).
fn check_duration(seconds: f64, limit: Option<f64>, allowance: f64) -> Result<(), DecodeError> {
    match limit {
        Some(limit) if seconds > limit + allowance => Err(DecodeError::TooLong { seconds, limit }),
        _ => Ok(()),
    }
}
