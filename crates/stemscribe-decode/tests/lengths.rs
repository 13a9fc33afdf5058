//! Decoded lengths of the streams that cannot be trusted to declare them: MP3 without a
//! Xing/LAME header (many files in the wild) and ADTS AAC. The fixtures are encoded here by
//! the project's own encoders; `scripts/test/check_decoded_lengths.sh` compares with ffmpeg.

use stemscribe_audio::Audio;
use stemscribe_decode::{decode, decode_native, DecodeError, DecodeOptions};
use stemscribe_encode::{encode_to_vec, OutputFormat, OutputSpec};

/// Bit rates of MPEG-1 and MPEG-2/2.5 Layer III, in kbit/s, by header index.
const MPEG1_KBPS: [u32; 15] = [
    0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
const MPEG2_KBPS: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/// The length in bytes of the Layer III frame whose header starts `bytes`.
fn frame_len(bytes: &[u8]) -> usize {
    let header = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    assert_eq!(header >> 21, 0x7ff, "not at a frame header");
    let version = (header >> 19) & 3;
    let bitrate_index = ((header >> 12) & 15) as usize;
    let rate_index = ((header >> 10) & 3) as usize;
    let padding = ((header >> 9) & 1) as usize;
    let mpeg1 = version == 3;
    let base = [44_100, 48_000, 32_000][rate_index];
    let rate = match version {
        3 => base,
        2 => base / 2,
        _ => base / 4,
    };
    let kbps = if mpeg1 { MPEG1_KBPS } else { MPEG2_KBPS }[bitrate_index];
    let per_frame = if mpeg1 { 144 } else { 72 };
    (per_frame * kbps * 1000 / rate) as usize + padding
}

/// Encodes `audio` with the project's MP3 encoder and removes the first frame, which holds
/// the Xing/LAME tag: what remains is a plain VBR stream with no length anywhere.
fn mp3_without_header(audio: Audio) -> Vec<u8> {
    let spec = OutputSpec {
        sample_rate: audio.sample_rate(),
        channels: audio.num_channels(),
        format: OutputFormat::Mp3,
    };
    let (bytes, _) = encode_to_vec(audio, &spec).unwrap();
    bytes[frame_len(&bytes)..].to_vec()
}

/// Deterministic noise at `level`.
fn noise(frames: usize, level: f32, seed: u32) -> Vec<f32> {
    let mut state = seed;
    (0..frames)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            level * ((state >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0)
        })
        .collect()
}

fn hinted(format: &str, limit: Option<f64>) -> DecodeOptions {
    DecodeOptions {
        format_hint: Some(format.to_owned()),
        max_duration_secs: limit,
        ..DecodeOptions::default()
    }
}

#[test]
fn vbr_mp3_without_a_xing_header_decodes_to_its_full_length() {
    // Quiet first (low bit rate), loud after (high bit rate): a length estimated from the
    // first frames' bit rate is far too long, one from the last far too short.
    let rate = 22_050;
    let mut samples = vec![0.0f32; 4 * rate as usize];
    samples.extend(noise(8 * rate as usize, 0.5, 7));
    let frames = samples.len();
    let stream = mp3_without_header(Audio::new(rate, vec![samples]).unwrap());
    let audio = decode_native(stream, &hinted("mp3", None)).unwrap();
    // Every input frame comes back, plus the encoder's delay and padding (no header says
    // how much), less the first frame that was removed (576 frames at this rate).
    let decoded = audio.frames();
    assert!(
        decoded + 576 >= frames && decoded <= frames + 3 * 576,
        "decoded {decoded} of {frames}"
    );
}

#[test]
fn exactly_ten_minutes_is_accepted_in_every_lossy_format() {
    // 8 kHz mono keeps the encoders fast; their padding is longest at the lowest rates.
    let rate = 8_000u32;
    let audio = Audio::new(rate, vec![noise(600 * rate as usize, 0.3, 11)]).unwrap();
    let limit = Some(600.0);
    let mp3 = mp3_without_header(audio.clone());
    let decoded = decode(mp3, &hinted("mp3", limit)).unwrap();
    assert!(
        decoded.duration_secs() >= 599.9,
        "{}",
        decoded.duration_secs()
    );
    let spec = OutputSpec {
        sample_rate: rate,
        channels: 1,
        format: OutputFormat::Aac,
    };
    let (aac, _) = encode_to_vec(audio, &spec).unwrap();
    let decoded = decode(aac.clone(), &hinted("aac", limit)).unwrap();
    assert!(
        decoded.duration_secs() >= 600.0,
        "{}",
        decoded.duration_secs()
    );
    // One second more is refused, from the decoded samples since ADTS declares no length.
    let error = decode(aac, &hinted("aac", Some(599.0))).unwrap_err();
    assert!(matches!(error, DecodeError::TooLong { .. }), "{error:?}");
}

#[test]
fn m4a_priming_is_skipped_as_its_edit_list_says() {
    // A 1 s tone made by ffmpeg: its AAC starts with 1024 frames of encoder priming that the
    // MP4 edit list marks to skip, and the edit keeps exactly 1 s.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/tone_440hz_44k_mono.m4a");
    let audio = decode_native(std::fs::read(path).unwrap(), &hinted("m4a", None)).unwrap();
    assert_eq!(audio.frames(), 44_100);
    // The tone starts at once instead of after 23 ms of near silence.
    let rms = |part: &[f32]| (part.iter().map(|s| s * s).sum::<f32>() / part.len() as f32).sqrt();
    let (start, middle) = (
        rms(&audio.channel(0)[..256]),
        rms(&audio.channel(0)[20_000..30_000]),
    );
    assert!(
        start > 0.8 * middle,
        "rms {start} at the start, {middle} in the middle"
    );
}
