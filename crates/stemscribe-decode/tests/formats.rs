//! Every supported container and sample format decodes to 44.1 kHz stereo of the right length.

use std::io::Cursor;
use std::path::PathBuf;

use stemscribe_decode::{decode, decode_file, decode_raw_pcm, DecodeOptions, RawPcm};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

/// The frequency of the strongest zero-crossing rate in `samples`, at 44.1 kHz.
fn zero_crossing_frequency(samples: &[f32]) -> f64 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / 44_100.0)
}

fn assert_tone(name: &str) {
    let audio = decode_file(&fixture(name), &DecodeOptions::default()).unwrap();
    assert_eq!(audio.sample_rate(), 44_100, "{name}");
    assert_eq!(audio.num_channels(), 2, "{name}");
    let seconds = audio.duration_secs();
    assert!((0.95..1.1).contains(&seconds), "{name}: {seconds} s");
    // Skip codec start-up and tail, where lossy codecs ramp.
    let middle = &audio.channel(0)[4_410..39_690];
    let freq = zero_crossing_frequency(middle);
    assert!((freq - 440.0).abs() < 5.0, "{name}: {freq} Hz");
    let side_difference = audio
        .channel(0)
        .iter()
        .zip(audio.channel(1))
        .map(|(l, r)| (l - r).abs())
        .fold(0.0f32, f32::max);
    assert!(
        side_difference < 0.05,
        "{name}: sides differ by {side_difference}"
    );
}

#[test]
fn mp3() {
    assert_tone("tone_440hz_48k_stereo.mp3");
}

#[test]
fn aac_adts() {
    assert_tone("tone_440hz_44k_stereo.aac");
}

#[test]
fn aac_m4a() {
    assert_tone("tone_440hz_44k_mono.m4a");
}

#[test]
fn flac() {
    assert_tone("tone_440hz_22k_mono.flac");
}

#[test]
fn ogg_vorbis() {
    assert_tone("tone_440hz_44k_stereo.ogg");
}

fn sine(i: usize, rate: u32) -> f64 {
    0.5 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / f64::from(rate)).sin()
}

/// Channel `c` of [`wav_bytes`] carries the sine at this gain, so that channels that trade
/// places show.
fn channel_gain(c: usize) -> f64 {
    1.0 / (c + 1) as f64
}

fn wav_bytes(spec: hound::WavSpec, frames: usize) -> Vec<u8> {
    let mut cursor = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
    for i in 0..frames {
        for c in 0..usize::from(spec.channels) {
            let x = sine(i, spec.sample_rate) * channel_gain(c);
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => writer.write_sample(x as f32).unwrap(),
                (_, 8) => writer.write_sample((x * 127.0) as i8).unwrap(),
                (_, 16) => writer.write_sample((x * 32_767.0) as i16).unwrap(),
                (_, 24) => writer.write_sample((x * 8_388_607.0) as i32).unwrap(),
                _ => writer.write_sample((x * 2_147_483_647.0) as i32).unwrap(),
            }
        }
    }
    writer.finalize().unwrap();
    cursor.into_inner()
}

#[test]
fn wav_every_sample_format() {
    let formats = [
        (8, hound::SampleFormat::Int, 2e-2),
        (16, hound::SampleFormat::Int, 1e-4),
        (24, hound::SampleFormat::Int, 1e-6),
        (32, hound::SampleFormat::Int, 1e-6),
        (32, hound::SampleFormat::Float, 1e-6),
    ];
    for (bits, sample_format, tolerance) in formats {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: bits,
            sample_format,
        };
        let audio = decode(wav_bytes(spec, 4_410), &DecodeOptions::default()).unwrap();
        assert_eq!(audio.frames(), 4_410, "{bits}-bit {sample_format:?}");
        for c in 0..2 {
            let error = audio
                .channel(c)
                .iter()
                .enumerate()
                .map(|(i, &s)| (f64::from(s) - sine(i, 44_100) * channel_gain(c)).abs())
                .fold(0.0, f64::max);
            assert!(
                error < tolerance,
                "{bits}-bit {sample_format:?}, channel {c}: error {error}"
            );
        }
    }
}

#[test]
fn wav_mono_48k_is_resampled_and_duplicated() {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let audio = decode(wav_bytes(spec, 48_000), &DecodeOptions::default()).unwrap();
    assert_eq!((audio.sample_rate(), audio.num_channels()), (44_100, 2));
    assert_eq!(audio.frames(), 44_100);
    assert!(audio.channel(0) == audio.channel(1), "sides differ");
}

#[test]
fn wav_surround_is_downmixed() {
    let spec = hound::WavSpec {
        channels: 6,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let audio = decode(wav_bytes(spec, 1_000), &DecodeOptions::default()).unwrap();
    assert_eq!(audio.num_channels(), 2);
    assert!(audio.peak() <= 0.5 + 1e-3);
}

#[test]
fn raw_pcm() {
    let bytes: Vec<u8> = (0..16_000)
        .flat_map(|i| ((sine(i, 16_000) * 32_767.0) as i16).to_le_bytes())
        .collect();
    let format = RawPcm {
        sample_rate: 16_000,
        channels: 1,
    };
    let audio = decode_raw_pcm(&bytes, format, None).unwrap();
    assert_eq!((audio.num_channels(), audio.frames()), (2, 44_100));
    let freq = zero_crossing_frequency(&audio.channel(0)[4_410..39_690]);
    assert!((freq - 440.0).abs() < 5.0, "{freq} Hz");
}

#[test]
fn selects_a_track_of_a_multitrack_file() {
    let path = fixture("music_delta_80s_rock.stem.mp4");
    let options = |track| DecodeOptions {
        track: Some(track),
        ..DecodeOptions::default()
    };
    let mix = decode_file(&path, &options(0)).unwrap();
    let vocals = decode_file(&path, &options(4)).unwrap();
    assert_eq!(mix.frames(), vocals.frames());
    assert!(
        mix.channel(0) != vocals.channel(0),
        "tracks 0 and 4 decode the same"
    );
    assert!(decode_file(&path, &options(9)).is_err());
}
