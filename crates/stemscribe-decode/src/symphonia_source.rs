//! Demuxing and decoding with symphonia, packet by packet, into a [`Sink`] that converts as
//! it goes, so that nothing larger than one packet exists at the stream's own rate and width.
//! MP3 is the exception: its packets are read first and decoded in parts on several threads
//! (bit for bit what one decoder gives), so its decoded song exists once at the stream's own
//! rate before it is converted.

use std::fs::File;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use stemscribe_audio::{Audio, StreamResampler, PROCESSING_RATE};
use symphonia::core::codecs::audio::well_known::CODEC_ID_MP3;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, Track, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;

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
/// Most threads an MP3 is decoded on.
const MAX_PARTS: usize = 4;
/// Fewest packets a thread decodes (about 26 s at 44.1 kHz): shorter inputs decode on one.
const MIN_PART_PACKETS: usize = 1_000;
/// Packets an MP3 decoder is fed before its part begins, so that its bit reservoir, its
/// inverse MDCT overlap (one granule) and its synthesis filter bank (16 slots) hold what they
/// would at that packet. The reservoir reaches up to 511 bytes back: 9 frames at the lowest
/// rate (8 kbit/s at 8 kHz, 59 bytes of main data a frame); a low-rate tone in the tests
/// needs more than 3.
const PRIMING_PACKETS: usize = 32;
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
            let mut stereo = stemscribe_audio::remix(std::mem::take(planes), 2);
            resampler.push_taking(&mut stereo)?;
        } else {
            resampler.push_taking(planes)?;
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
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let split = Split {
        max_parts: threads.min(MAX_PARTS),
        min_part_packets: MIN_PART_PACKETS,
    };
    decode_split(input, options, sink, split)
}

/// How many threads an MP3 may be decoded on.
#[derive(Debug, Clone, Copy)]
struct Split {
    /// Most parts (threads).
    max_parts: usize,
    /// Fewest packets in a part.
    min_part_packets: usize,
}

/// [`decode_into`], an MP3 split as `split` allows.
fn decode_split(
    input: &Input,
    options: &DecodeOptions,
    sink: &mut dyn Sink,
    split: Split,
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
    // Made first so that an unsupported codec is refused before anything is read.
    let mut decoder = make_decoder(&params)?;
    let short_name = format.format_info().short_name;
    if short_name == "mp3" && params.codec == CODEC_ID_MP3 && split.max_parts > 1 {
        let (packets, bad_packets) = demux_all(format.as_mut(), track_id, options, &params)?;
        drop(format);
        return decode_in_parts(&params, &packets, bad_packets, split, declared, sink);
    }
    let edit = match (short_name, params.sample_rate) {
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
    while let Some(packet) = next_packet(format.as_mut(), track_id, &mut bad_packets)? {
        let Some(this) = decode_packet(decoder.as_mut(), &packet, &mut bad_packets, &mut planes)?
        else {
            continue;
        };
        if keep_layout(&mut layout, this)? {
            sink.start(this.0, this.1)?;
        }
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
    // What the edit list leaves of the declared frames.
    let declared = declared.map(|(declared, _)| match edit {
        Some(Edit {
            keep: Some(keep), ..
        }) => keep.min(declared),
        Some(Edit { skip, keep: None }) => declared.saturating_sub(skip),
        None => declared,
    });
    check_complete(decoded, bad_packets, declared)
}

/// Refuses a stream of which nothing decoded, or less than [`TRUNCATION_TOLERANCE`] of the
/// `declared` frames.
fn check_complete(
    decoded: u64,
    bad_packets: usize,
    declared: Option<u64>,
) -> Result<(), DecodeError> {
    if decoded == 0 {
        return if bad_packets > 0 {
            Err(DecodeError::Malformed("no packet could be decoded".into()))
        } else {
            Err(DecodeError::NoSamples)
        };
    }
    match declared {
        Some(declared) if (decoded as f64) < declared as f64 * TRUNCATION_TOLERANCE => {
            Err(DecodeError::Truncated { decoded, declared })
        }
        _ => Ok(()),
    }
}

/// The next packet of track `track_id`, `None` at the end of the stream; a packet the
/// container cannot read is skipped (counted in `bad_packets`, up to [`MAX_BAD_PACKETS`]).
fn next_packet(
    format: &mut dyn FormatReader,
    track_id: u32,
    bad_packets: &mut usize,
) -> Result<Option<Packet>, DecodeError> {
    loop {
        match format.next_packet() {
            Ok(Some(packet)) if packet.track_id == track_id => return Ok(Some(packet)),
            Ok(Some(_)) => {}
            Ok(None) => return Ok(None),
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(None)
            }
            Err(SymphoniaError::DecodeError(_)) if *bad_packets < MAX_BAD_PACKETS => {
                *bad_packets += 1;
            }
            Err(SymphoniaError::IoError(e)) => return Err(DecodeError::Io(e)),
            Err(e) => return Err(DecodeError::Malformed(e.to_string())),
        }
    }
}

/// Records `this` (a buffer's rate and channel count) as the stream's `layout` if it is the
/// first, and returns whether it was; refuses a stream that changes them.
fn keep_layout(layout: &mut Option<(u32, usize)>, this: (u32, usize)) -> Result<bool, DecodeError> {
    match *layout {
        None => {
            *layout = Some(this);
            Ok(true)
        }
        Some(first) if first != this => Err(DecodeError::Malformed(
            "the stream changes its sample rate or channel count".into(),
        )),
        Some(_) => Ok(false),
    }
}

/// A decoder for `params`.
fn make_decoder(params: &AudioCodecParameters) -> Result<Box<dyn AudioDecoder>, DecodeError> {
    symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| DecodeError::Unsupported(e.to_string()))
}

/// Decodes `packet` into `planes`; returns the buffer's rate and channel count, or `None`
/// when the packet is corrupt and skipped (counted in `bad_packets`, up to
/// [`MAX_BAD_PACKETS`]).
fn decode_packet(
    decoder: &mut dyn AudioDecoder,
    packet: &Packet,
    bad_packets: &mut usize,
    planes: &mut Vec<Vec<f32>>,
) -> Result<Option<(u32, usize)>, DecodeError> {
    match decoder.decode(packet) {
        Ok(buffer) => {
            let spec = buffer.spec();
            let layout = (spec.rate(), spec.channels().count());
            buffer.copy_to_vecs_planar(planes);
            Ok(Some(layout))
        }
        Err(SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_))
            if *bad_packets < MAX_BAD_PACKETS =>
        {
            *bad_packets += 1;
            Ok(None)
        }
        Err(e) => Err(DecodeError::Malformed(e.to_string())),
    }
}

/// Reads every packet of track `track_id`; returns them and the number of corrupt ones
/// skipped. Fails with [`DecodeError::TooLong`] as soon as the packets' duration passes the
/// limit, before anything is decoded.
fn demux_all(
    format: &mut dyn FormatReader,
    track_id: u32,
    options: &DecodeOptions,
    params: &AudioCodecParameters,
) -> Result<(Vec<Packet>, usize), DecodeError> {
    let rate = f64::from(params.sample_rate.unwrap_or(PROCESSING_RATE).max(1));
    let mut packets = Vec::new();
    let mut bad_packets = 0;
    let mut frames = 0u64;
    while let Some(packet) = next_packet(format, track_id, &mut bad_packets)? {
        frames = frames.saturating_add(packet.dur.get());
        check_duration(
            frames as f64 / rate,
            options.max_duration_secs,
            CODEC_PADDING_ALLOWANCE_SECS,
        )?;
        packets.push(packet);
    }
    Ok((packets, bad_packets))
}

/// What one run of packets decoded to.
#[derive(Default)]
struct Run {
    /// The rate and channel count of its buffers (`None` when none decoded).
    layout: Option<(u32, usize)>,
    /// Frames decoded.
    frames: usize,
    /// Corrupt packets skipped.
    bad_packets: usize,
}

/// Where a run's samples go: its own range of the song's buffer, or buffers of its own.
enum Out<'a> {
    /// Planar ranges of exactly the frames the run's packets declare.
    Range(Vec<&'a mut [f32]>),
    /// Buffers that grow with the run.
    Owned(Vec<Vec<f32>>),
}

impl Out<'_> {
    /// Copies one packet's `planes` after the `at` frames already there; false when they do
    /// not fit the range or have another channel count.
    fn put(&mut self, at: usize, planes: &[Vec<f32>]) -> bool {
        let frames = planes.first().map_or(0, Vec::len);
        match self {
            Out::Range(ranges) => {
                if ranges.len() != planes.len()
                    || ranges.first().map_or(0, |r| r.len()) < at + frames
                {
                    return false;
                }
                for (range, plane) in ranges.iter_mut().zip(planes) {
                    range[at..at + frames].copy_from_slice(plane);
                }
            }
            Out::Owned(buffers) => {
                if buffers.is_empty() {
                    buffers.resize(planes.len(), Vec::new());
                }
                if buffers.len() != planes.len() {
                    return false;
                }
                for (buffer, plane) in buffers.iter_mut().zip(planes) {
                    buffer.extend_from_slice(plane);
                }
            }
        }
        true
    }
}

/// Decodes MP3 `packets` in consecutive runs as `split` allows, one thread each, and hands
/// the song to `sink`. Each run's decoder is first fed the [`PRIMING_PACKETS`] before the
/// run, their output dropped: an MP3 decoder's state (the bit reservoir, the overlap of the
/// inverse MDCT and the synthesis filter bank) depends on the last few frames only, so every
/// run decodes to the very samples one decoder would give from the start (checked bit for
/// bit in the tests). The runs write into their own ranges of one buffer of the frames the
/// packets declare, so the song is neither copied nor grown; a stream whose packets decode to
/// other lengths (a corrupt packet, a header that lies) is decoded again by one decoder.
fn decode_in_parts(
    params: &AudioCodecParameters,
    packets: &[Packet],
    bad_packets: usize,
    split: Split,
    declared: Option<(u64, f64)>,
    sink: &mut dyn Sink,
) -> Result<(), DecodeError> {
    let runs = (packets.len() / split.min_part_packets.max(1)).clamp(1, split.max_parts.max(1));
    let size = packets.len().div_ceil(runs).max(1);
    let channels = params.channels.as_ref().map_or(0, |c| c.count());
    let frames: Vec<usize> = packets
        .chunks(size)
        .map(|run| run.iter().map(packet_frames).sum())
        .collect();
    let total = frames.iter().sum();
    // Zeroed by the kernel, each page mapped where a run first writes it.
    let mut song: Vec<Vec<f32>> = (0..channels).map(|_| vec![0.0; total]).collect();
    // Without a declared channel count there is nothing to split: one decoder.
    let in_place = if channels == 0 {
        None
    } else {
        // Each run's range of every channel.
        let mut rest: Vec<&mut [f32]> = song.iter_mut().map(Vec::as_mut_slice).collect();
        let ranges: Vec<Vec<&mut [f32]>> = frames
            .iter()
            .map(|&n| {
                rest.iter_mut()
                    .map(|channel| {
                        let (range, after) = std::mem::take(channel).split_at_mut(n);
                        *channel = after;
                        range
                    })
                    .collect()
            })
            .collect();
        let decoded: Vec<Result<Option<Run>, DecodeError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = ranges
                .into_iter()
                .zip(&frames)
                .enumerate()
                .map(|(k, (range, &n))| {
                    let start = k * size;
                    let end = (start + size).min(packets.len());
                    let primed = start.saturating_sub(PRIMING_PACKETS);
                    scope.spawn(move || {
                        let mut out = Out::Range(range);
                        let run =
                            decode_run(params, &packets[primed..end], start - primed, &mut out)?;
                        Ok(run.filter(|run| run.frames == n))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        decoded
            .into_iter()
            .collect::<Result<Option<Vec<Run>>, DecodeError>>()?
    };
    let runs = match in_place {
        Some(runs) => runs,
        None => {
            let mut out = Out::Owned(Vec::new());
            let run = decode_run(params, packets, 0, &mut out)?.ok_or_else(|| {
                DecodeError::Malformed("the stream changes its channel count".into())
            })?;
            if let Out::Owned(buffers) = out {
                song = buffers;
            }
            vec![run]
        }
    };
    let mut bad_packets = bad_packets;
    let mut layout = None;
    for run in &runs {
        bad_packets += run.bad_packets;
        if let Some(this) = run.layout {
            keep_layout(&mut layout, this)?;
        }
    }
    if bad_packets > MAX_BAD_PACKETS {
        return Err(DecodeError::Malformed(format!(
            "more than {MAX_BAD_PACKETS} corrupt packets"
        )));
    }
    let decoded = runs.iter().map(|run| run.frames as u64).sum();
    if let Some((rate, channels)) = layout {
        sink.start(rate, channels)?;
        sink.push(&mut song)?;
    }
    check_complete(decoded, bad_packets, declared.map(|(frames, _)| frames))
}

/// The frames `packet` decodes to once the decoder trims the encoder's delay and padding.
fn packet_frames(packet: &Packet) -> usize {
    let trimmed = packet
        .trim_start
        .get()
        .saturating_add(packet.trim_end.get());
    packet.dur.get().saturating_sub(trimmed) as usize
}

/// Decodes `packets` into `out`, dropping the output of the first `priming` of them; `None`
/// when a packet's samples do not fit `out`.
fn decode_run(
    params: &AudioCodecParameters,
    packets: &[Packet],
    priming: usize,
    out: &mut Out<'_>,
) -> Result<Option<Run>, DecodeError> {
    let mut decoder = make_decoder(params)?;
    let mut run = Run::default();
    let mut planes = Vec::new();
    for (i, packet) in packets.iter().enumerate() {
        if i < priming {
            // Only the decoder's state matters here; a packet it cannot decode is one the run
            // before this one counts.
            let _ = decoder.decode(packet);
            continue;
        }
        let Some(this) =
            decode_packet(decoder.as_mut(), packet, &mut run.bad_packets, &mut planes)?
        else {
            continue;
        };
        keep_layout(&mut run.layout, this)?;
        if !out.put(run.frames, &planes) {
            return Ok(None);
        }
        run.frames += planes.first().map_or(0, Vec::len);
    }
    Ok(Some(run))
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use stemscribe_encode::{encode_to_vec, OutputFormat, OutputSpec};

    use super::*;

    fn test_data(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data")
            .join(name);
        std::fs::read(path).expect("bundled test file")
    }

    /// `bytes` as an MP3 at `rate` with `channels`, made by this project's encoder (LAME,
    /// VBR).
    fn mp3_of(bytes: Vec<u8>, rate: u32, channels: usize) -> Vec<u8> {
        let audio = crate::decode(bytes, &DecodeOptions::default()).expect("decodes");
        let spec = OutputSpec {
            sample_rate: rate,
            channels,
            format: OutputFormat::Mp3,
        };
        encode_to_vec(audio, &spec).expect("encodes").0
    }

    fn decode_native_split(bytes: &[u8], split: Split) -> Audio {
        let mut sink = NativeSink::default();
        let input = Input::Memory(Arc::new(bytes.to_vec()));
        decode_split(&input, &DecodeOptions::default(), &mut sink, split).expect("decodes");
        sink.finish().expect("audio")
    }

    /// Decoded to 44.1 kHz stereo, as [`crate::decode`] does.
    fn decode_processing_split(bytes: &[u8], split: Split) -> Audio {
        let mut sink = ProcessingSink::default();
        let input = Input::Memory(Arc::new(bytes.to_vec()));
        decode_split(&input, &DecodeOptions::default(), &mut sink, split).expect("decodes");
        sink.finish().expect("audio")
    }

    fn assert_same_bits(a: &Audio, b: &Audio, what: &str) {
        assert_eq!(a.sample_rate(), b.sample_rate(), "{what}");
        assert_eq!(a.num_channels(), b.num_channels(), "{what}");
        for (a, b) in a.channels().iter().zip(b.channels()) {
            assert_eq!(a.len(), b.len(), "{what}");
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{what}: samples differ");
        }
    }

    /// `bytes` with a stretch of garbage every `every` bytes: frames whose data is damaged
    /// (decoded or skipped as the decoder sees fit), headers that no longer parse.
    fn damaged(mut bytes: Vec<u8>, every: usize) -> Vec<u8> {
        let len = bytes.len();
        for at in (4_000..len).step_by(every) {
            for (i, byte) in bytes[at..(at + 40).min(len)].iter_mut().enumerate() {
                *byte = (i as u8).wrapping_mul(151) ^ 0x5a;
            }
        }
        bytes
    }

    #[test]
    fn mp3_decoded_in_parts_is_bit_for_bit_the_mp3_decoded_in_one() {
        let mp3s = [
            test_data("spleeter_audio_example.mp3"),
            test_data("tone_440hz_48k_stereo.mp3"),
            mp3_of(test_data("rock_mix.wav"), 44_100, 2),
            mp3_of(test_data("rock_mix.wav"), 22_050, 1),
            mp3_of(test_data("speech_arctic_a0007.wav"), 8_000, 1),
            mp3_of(test_data("rock_vocals.wav"), 32_000, 2),
            // Runs whose packets decode to other lengths than they declare are decoded again
            // by one decoder.
            damaged(test_data("spleeter_audio_example.mp3"), 9_000),
        ];
        let whole = Split {
            max_parts: 1,
            min_part_packets: 1,
        };
        for (i, mp3) in mp3s.iter().enumerate() {
            let reference = decode_native_split(mp3, whole);
            assert!(reference.frames() > 0);
            for (max_parts, min_part_packets) in [(2, 1), (3, 7), (4, 1), (16, 5)] {
                let split = Split {
                    max_parts,
                    min_part_packets,
                };
                let parts = decode_native_split(mp3, split);
                assert_same_bits(&parts, &reference, &format!("file {i}, {max_parts} parts"));
            }
            // At 44.1 kHz stereo (the song's buffer handed over, mono widened, other rates
            // resampled) as well.
            let split = Split {
                max_parts: 3,
                min_part_packets: 7,
            };
            assert_same_bits(
                &decode_processing_split(mp3, split),
                &decode_processing_split(mp3, whole),
                &format!("file {i} at 44.1 kHz"),
            );
        }
    }
}
