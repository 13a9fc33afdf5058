//! Demuxing and decoding with symphonia to planar f32 at the stream's own rate and layout.

use std::io::Cursor;

use stemscribe_audio::Audio;
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, Track, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::{check_duration, DecodeError, DecodeOptions};

/// A stream is called truncated when fewer than this share of its declared frames decode.
const TRUNCATION_TOLERANCE: f64 = 0.98;
/// Corrupt packets tolerated (skipped) before the stream is called malformed.
const MAX_BAD_PACKETS: usize = 64;

/// Reads the duration the container declares, without decoding (None when it declares none).
pub fn probe_duration_secs(
    bytes: Vec<u8>,
    options: &DecodeOptions,
) -> Result<Option<f64>, DecodeError> {
    let format = open(bytes, options)?;
    let track = select_track(format.as_ref(), options)?;
    Ok(declared_duration(track).map(|(_, seconds)| seconds))
}

/// Decodes the selected track to planar f32 at its native rate and channel count.
pub(crate) fn decode_native(bytes: Vec<u8>, options: &DecodeOptions) -> Result<Audio, DecodeError> {
    let mut format = open(bytes, options)?;
    let track = select_track(format.as_ref(), options)?;
    let track_id = track.id;
    let declared = declared_duration(track);
    if let Some((_, seconds)) = declared {
        check_duration(seconds, options.max_duration_secs)?;
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

    let mut channels: Vec<Vec<f32>> = Vec::new();
    let mut scratch: Vec<Vec<f32>> = Vec::new();
    let mut sample_rate = params.sample_rate.unwrap_or(0);
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
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_))
                if bad_packets < MAX_BAD_PACKETS =>
            {
                bad_packets += 1;
                continue;
            }
            Err(e) => return Err(DecodeError::Malformed(e.to_string())),
        };
        let spec = decoded.spec();
        let count = spec.channels().count();
        if channels.is_empty() {
            sample_rate = spec.rate();
            // Validates rate and channel count before anything is allocated for them.
            Audio::new(sample_rate, vec![Vec::new(); count])?;
            channels = vec![Vec::new(); count];
        } else if count != channels.len() || spec.rate() != sample_rate {
            return Err(DecodeError::Malformed(
                "the stream changes its sample rate or channel count".into(),
            ));
        }
        decoded.copy_to_vecs_planar(&mut scratch);
        for (channel, plane) in channels.iter_mut().zip(&scratch) {
            channel.extend_from_slice(plane);
        }
        let seconds = channels[0].len() as f64 / f64::from(sample_rate);
        check_duration(seconds, options.max_duration_secs)?;
    }
    if channels.is_empty() {
        return if bad_packets > 0 {
            Err(DecodeError::Malformed("no packet could be decoded".into()))
        } else {
            Err(DecodeError::NoSamples)
        };
    }
    let decoded = channels[0].len() as u64;
    if let Some((declared, _)) = declared {
        if (decoded as f64) < declared as f64 * TRUNCATION_TOLERANCE {
            return Err(DecodeError::Truncated { decoded, declared });
        }
    }
    Ok(Audio::new(sample_rate, channels)?)
}

fn open(bytes: Vec<u8>, options: &DecodeOptions) -> Result<Box<dyn FormatReader>, DecodeError> {
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
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
