//! Every class of bad input yields its typed error, never a panic.

use stemscribe_decode::{
    decode, decode_raw_pcm, probe_duration_secs, DecodeError, DecodeOptions, RawPcm,
};

/// A canonical 16-bit PCM WAV header followed by `data`, with the fields given.
fn wav(channels: u16, rate: u32, declared_data: u32, data: &[u8]) -> Vec<u8> {
    let block_align = channels.wrapping_mul(2);
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + declared_data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&rate.wrapping_mul(u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&declared_data.to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn decode_bytes(bytes: Vec<u8>) -> Result<stemscribe_audio::Audio, DecodeError> {
    decode(bytes, &DecodeOptions::default())
}

#[test]
fn empty_input() {
    assert!(matches!(decode_bytes(Vec::new()), Err(DecodeError::Empty)));
}

#[test]
fn garbage_is_unsupported() {
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    assert!(matches!(
        decode_bytes(garbage),
        Err(DecodeError::Unsupported(_))
    ));
}

#[test]
fn header_only_is_rejected() {
    let header = wav(2, 44_100, 0, &[]);
    let error = decode_bytes(header[..20].to_vec()).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::Malformed(_) | DecodeError::Unsupported(_)
        ),
        "{error:?}"
    );
    assert!(decode_bytes(header).is_err());
}

#[test]
fn truncated_wav() {
    let data = vec![0u8; 4_000];
    let error = decode_bytes(wav(2, 44_100, 400_000, &data)).unwrap_err();
    assert!(matches!(error, DecodeError::Truncated { .. }), "{error:?}");
}

/// Absurd stream parameters are refused by symphonia or by our own checks, never decoded.
fn assert_refused_parameters(bytes: Vec<u8>) {
    let error = decode_bytes(bytes).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::Unsupported(_) | DecodeError::InvalidParameters(_)
        ),
        "{error:?}"
    );
}

#[test]
fn zero_channels() {
    assert_refused_parameters(wav(0, 44_100, 4, &[0; 4]));
}

#[test]
fn zero_hertz() {
    assert_refused_parameters(wav(2, 0, 4_000, &[0; 4_000]));
}

#[test]
fn ten_megahertz() {
    assert_refused_parameters(wav(2, 10_000_000, 4_000, &[0; 4_000]));
}

#[test]
fn too_long_is_refused_before_decoding() {
    // Declares 11 minutes at 8 kHz mono but carries almost no data: the declared length
    // alone must trigger the limit.
    let declared = 11 * 60 * 8_000 * 2;
    let bytes = wav(1, 8_000, declared, &[0; 64]);
    let options = DecodeOptions {
        max_duration_secs: Some(600.0),
        ..DecodeOptions::default()
    };
    assert_eq!(
        probe_duration_secs(bytes.clone(), &options).unwrap(),
        Some(660.0)
    );
    let error = decode(bytes, &options).unwrap_err();
    assert!(matches!(error, DecodeError::TooLong { .. }), "{error:?}");
}

#[test]
fn raw_pcm_bad_shapes() {
    let format = |sample_rate, channels| RawPcm {
        sample_rate,
        channels,
    };
    assert!(matches!(
        decode_raw_pcm(&[], format(44_100, 2), None),
        Err(DecodeError::Empty)
    ));
    assert!(matches!(
        decode_raw_pcm(&[0; 6], format(44_100, 2), None),
        Err(DecodeError::Malformed(_))
    ));
    assert!(matches!(
        decode_raw_pcm(&[0; 8], format(0, 2), None),
        Err(DecodeError::InvalidParameters(_))
    ));
    assert!(matches!(
        decode_raw_pcm(&[0; 8], format(44_100, 0), None),
        Err(DecodeError::InvalidParameters(_))
    ));
    assert!(matches!(
        decode_raw_pcm(&[0; 8], format(10_000_000, 2), None),
        Err(DecodeError::InvalidParameters(_))
    ));
    let too_long = vec![0u8; 2 * 8_000 * 11];
    assert!(matches!(
        decode_raw_pcm(&too_long, format(8_000, 1), Some(10.0)),
        Err(DecodeError::TooLong { .. })
    ));
}

#[test]
fn truncated_mp3_is_refused_with_what_it_lacks() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/tone_440hz_48k_stereo.mp3");
    let bytes = std::fs::read(path).unwrap();
    // The whole file: 1 s.
    assert_eq!(decode_bytes(bytes.clone()).unwrap().frames(), 44_100);
    // Cut inside the header, before any frame is recognisable, after the header only, and
    // after some frames: each an error of its own kind, never a short result passed as whole.
    let error = |cut: usize| decode_bytes(bytes[..cut].to_vec()).unwrap_err();
    assert!(
        matches!(error(10), DecodeError::Malformed(_)),
        "{:?}",
        error(10)
    );
    assert!(
        matches!(error(100), DecodeError::Unsupported(_)),
        "{:?}",
        error(100)
    );
    assert!(
        matches!(error(417), DecodeError::NoSamples),
        "{:?}",
        error(417)
    );
    for cut in [1_000, bytes.len() / 2] {
        match error(cut) {
            DecodeError::Truncated { decoded, declared } => {
                assert!(decoded > 0 && decoded < declared, "{decoded} of {declared}");
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}
