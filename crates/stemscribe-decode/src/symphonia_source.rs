//! Demuxing and decoding with symphonia, packet by packet, into a [`Sink`] that converts as
//! it goes, so that nothing larger than one packet exists at the stream's own rate and width.

use std::fs::File;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use stemscribe_audio::{Audio, StreamResampler, PROCESSING_RATE};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, Track, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;

use crate::edit_list::{track_edit, Edit};
use crate::{check_duration, DecodeError, DecodeOptions};

/// A stream is called truncated when fewer than this share of its declared frames decode.
const TRUNCATION_TOLERANCE: f64 = 0.98;
/// Corrupt packets tolerated (skipped) before the stream is called malformed.
const MAX_BAD_PACKETS: usize = 64;
/// Formats whose declared length symphonia estimates from the bit rate of the first frames
/// unless a Xing, Info or VBRI header gives it: MPEG audio and ADTS AAC. They are read as
/// unseekable streams, so that only a header's length is believed and, without one, every
/// packet is decoded (an estimate too short would cut the song, one too long would refuse it).
const ESTIMATED_LENGTH_FORMATS: [&str; 4] = ["mp1", "mp2", "mp3", "aac"];
/// Room over [`DecodeOptions::max_duration_secs`] for the silence that codecs add at the start
/// and end (MP3 encoder delay and padding, AAC priming: under 0.3 s even at 8 kHz), so that a
/// song of exactly the limit is accepted in every format.
pub const CODEC_PADDING_ALLOWANCE_SECS: f64 = 0.5;

/// Encoded bytes, in memory or in a file.
#[derive(Debug, Clone)]
pub(crate) enum Input {
    /// A whole file held in memory, shared so that it can be reopened without a copy.
    Memory(Arc<Vec<u8>>),
    /// A file on disk, read as it is decoded.
    File(PathBuf),
}

/// Bytes shared between the readers of one input.
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Input {
    /// The MP4 edit of track `track_id` (see [`crate::edit_list`]).
    fn mp4_edit(&self, track_id: u32, sample_rate: u32) -> Option<Edit> {
        match self {
            Self::Memory(bytes) => {
                track_edit(&mut Cursor::new(bytes.as_slice()), track_id, sample_rate)
            }
            Self::File(path) => {
                let mut file = std::io::BufReader::new(File::open(path).ok()?);
                track_edit(&mut file, track_id, sample_rate)
            }
        }
    }

    fn media(&self, seekable: bool) -> Result<Box<dyn MediaSource>, DecodeError> {
        Ok(match (self, seekable) {
            (Self::Memory(bytes), true) => Box::new(Cursor::new(Shared(bytes.clone()))),
            (Self::Memory(bytes), false) => {
                Box::new(ReadOnlySource::new(Cursor::new(Shared(bytes.clone()))))
            }
            (Self::File(path), true) => Box::new(File::open(path)?),
            (Self::File(path), false) => Box::new(ReadOnlySource::new(File::open(path)?)),
        })
    }
}

/// Receives decoded audio at the stream's own rate and layout.
pub(crate) trait Sink {
    /// Called once, before the first samples, with the stream's rate and channel count.
    fn start(&mut self, sample_rate: u32, channels: usize) -> Result<(), DecodeError>;
    /// One decoded packet, planar; `planes` may be taken.
    fn push(&mut self, planes: &mut Vec<Vec<f32>>) -> Result<(), DecodeError>;
}

/// Keeps everything at the native rate and layout.
#[derive(Debug, Default)]
pub(crate) struct NativeSink {
    sample_rate: u32,
    channels: Vec<Vec<f32>>,
}

impl Sink for NativeSink {
    fn start(&mut self, sample_rate: u32, channels: usize) -> Result<(), DecodeError> {
        Audio::new(sample_rate, vec![Vec::new(); channels])?;
        self.sample_rate = sample_rate;
        self.channels = vec![Vec::new(); channels];
        Ok(())
    }

    fn push(&mut self, planes: &mut Vec<Vec<f32>>) -> Result<(), DecodeError> {
        for (channel, plane) in self.channels.iter_mut().zip(planes.iter()) {
            channel.extend_from_slice(plane);
        }
        Ok(())
    }
}

impl NativeSink {
    pub(crate) fn finish(self) -> Result<Audio, DecodeError> {
        Ok(Audio::new(self.sample_rate, self.channels)?)
    }
}

/// Downmixes to at most two channels and resamples to [`PROCESSING_RATE`] packet by packet;
/// mono is widened to stereo only at the end.
#[derive(Debug, Default)]
pub(crate) struct ProcessingSink {
    native_channels: usize,
    resampler: Option<StreamResampler>,
}

impl Sink for ProcessingSink {
    fn start(&mut self, sample_rate: u32, channels: usize) -> Result<(), DecodeError> {
        Audio::new(sample_rate, vec![Vec::new(); channels])?;
        self.native_channels = channels;
        self.resampler = Some(StreamResampler::new(
            sample_rate,
            PROCESSING_RATE,
            channels.min(2),
        )?);
        Ok(())
    }

    fn push(&mut self, planes: &mut Vec<Vec<f32>>) -> Result<(), DecodeError> {
        let Some(resampler) = self.resampler.as_mut() else {
            return Ok(());
        };
        if self.native_channels > 2 {
            let stereo = stemscribe_audio::remix(std::mem::take(planes), 2);
            resampler.push(&stereo)?;
        } else {
            resampler.push(planes)?;
        }
        Ok(())
    }
}

impl ProcessingSink {
    pub(crate) fn finish(self) -> Result<Audio, DecodeError> {
        let resampler = self.resampler.ok_or(DecodeError::NoSamples)?;
        let mut channels = resampler.finish()?;
        if channels.len() == 1 {
            channels.push(channels[0].clone());
        }
        Ok(Audio::new(PROCESSING_RATE, channels)?)
    }
}

/// Reads the duration the container declares, without decoding (None when it declares none,
/// or when it could only be estimated from the bit rate).
pub fn probe_duration_secs(
    bytes: Vec<u8>,
    options: &DecodeOptions,
) -> Result<Option<f64>, DecodeError> {
    let format = open(&Input::Memory(Arc::new(bytes)), options)?;
    let track = select_track(format.as_ref(), options)?;
    Ok(declared_duration(track).map(|(_, seconds)| seconds))
}

/// Decodes the selected track of `input` into `sink`, refusing it as soon as its decoded
/// length passes the limit.
pub(crate) fn decode_into(
    input: &Input,
    options: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<(), DecodeError> {
    let mut format = open(input, options)?;
    let track = select_track(format.as_ref(), options)?;
    let track_id = track.id;
    let declared = declared_duration(track);
    if let Some((_, seconds)) = declared {
        check_duration(
            seconds,
            options.max_duration_secs,
            CODEC_PADDING_ALLOWANCE_SECS,
        )?;
    }
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| DecodeError::NoTrack("with audio codec parameters".into()))?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| DecodeError::Unsupported(e.to_string()))?;
    let edit = match (format.format_info().short_name, params.sample_rate) {
        ("isomp4", Some(rate)) => input.mp4_edit(track_id, rate),
        _ => None,
    };
    // Native frames still to drop at the start, and the last one to keep.
    let mut skip = edit.map_or(0, |e| e.skip);
    let keep_until = edit.and_then(|e| e.keep);

    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut layout: Option<(u32, usize)> = None;
    let mut decoded = 0u64;
    let mut bad_packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(SymphoniaError::DecodeError(_)) if bad_packets < MAX_BAD_PACKETS => {
                bad_packets += 1;
                continue;
            }
            Err(SymphoniaError::IoError(e)) => return Err(DecodeError::Io(e)),
            Err(e) => return Err(DecodeError::Malformed(e.to_string())),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            Err(SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_))
                if bad_packets < MAX_BAD_PACKETS =>
            {
                bad_packets += 1;
                continue;
            }
            Err(e) => return Err(DecodeError::Malformed(e.to_string())),
        };
        let spec = buffer.spec();
        let this = (spec.rate(), spec.channels().count());
        match layout {
            None => {
                sink.start(this.0, this.1)?;
                layout = Some(this);
            }
            Some(first) if first != this => {
                return Err(DecodeError::Malformed(
                    "the stream changes its sample rate or channel count".into(),
                ))
            }
            Some(_) => {}
        }
        buffer.copy_to_vecs_planar(&mut planes);
        let dropped = (skip as usize).min(planes.first().map_or(0, Vec::len));
        if dropped > 0 {
            planes.iter_mut().for_each(|p| drop(p.drain(..dropped)));
            skip -= dropped as u64;
        }
        if let Some(last) = keep_until {
            let room = last.saturating_sub(decoded) as usize;
            planes.iter_mut().for_each(|p| p.truncate(room));
        }
        let frames = planes.first().map_or(0, Vec::len);
        if frames == 0 {
            continue;
        }
        decoded += frames as u64;
        check_duration(
            decoded as f64 / f64::from(this.0),
            options.max_duration_secs,
            CODEC_PADDING_ALLOWANCE_SECS,
        )?;
        sink.push(&mut planes)?;
    }
    if decoded == 0 {
        return if bad_packets > 0 {
            Err(DecodeError::Malformed("no packet could be decoded".into()))
        } else {
            Err(DecodeError::NoSamples)
        };
    }
    if let Some((declared, _)) = declared {
        // What the edit list leaves of the declared frames.
        let declared = match edit {
            Some(Edit {
                keep: Some(keep), ..
            }) => keep.min(declared),
            Some(Edit { skip, keep: None }) => declared.saturating_sub(skip),
            None => declared,
        };
        if (decoded as f64) < declared as f64 * TRUNCATION_TOLERANCE {
            return Err(DecodeError::Truncated { decoded, declared });
        }
    }
    Ok(())
}

/// Probes the container; formats whose length symphonia would estimate are reopened as
/// unseekable streams (see [`ESTIMATED_LENGTH_FORMATS`]).
fn open(input: &Input, options: &DecodeOptions) -> Result<Box<dyn FormatReader>, DecodeError> {
    let format = probe(input.media(true)?, options)?;
    if ESTIMATED_LENGTH_FORMATS.contains(&format.format_info().short_name) {
        drop(format);
        return probe(input.media(false)?, options);
    }
    Ok(format)
}

fn probe(
    media: Box<dyn MediaSource>,
    options: &DecodeOptions,
) -> Result<Box<dyn FormatReader>, DecodeError> {
    let source = MediaSourceStream::new(media, Default::default());
    let mut hint = Hint::new();
    if let Some(extension) = &options.format_hint {
        hint.with_extension(extension);
    }
    symphonia::default::get_probe()
        .probe(
            &hint,
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymphoniaError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                DecodeError::Malformed("the input ends inside its header".into())
            }
            other => DecodeError::Unsupported(other.to_string()),
        })
}

fn select_track<'f>(
    format: &'f dyn FormatReader,
    options: &DecodeOptions,
) -> Result<&'f Track, DecodeError> {
    match options.track {
        Some(index) => format
            .tracks()
            .get(index)
            .ok_or_else(|| DecodeError::NoTrack(format!("at index {index}"))),
        None => format
            .default_track(TrackType::Audio)
            .ok_or_else(|| DecodeError::NoTrack("in the input".into())),
    }
}

/// The frame count and duration a track declares, when it declares both a count and a rate.
fn declared_duration(track: &Track) -> Option<(u64, f64)> {
    let frames = track.num_frames?;
    let rate = track.codec_params.as_ref()?.audio()?.sample_rate?;
    (rate > 0).then(|| (frames, frames as f64 / f64::from(rate)))
}
