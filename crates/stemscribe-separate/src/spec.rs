//! What the separator needs to know about a model: its STFT, the bins and frames it reads,
//! its tensor names and the stems it estimates; and the model card, the TOML file that says
//! all of this (format: `models/README.md`).

use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

/// Largest `stft.fft_size` a card may ask for (1.5 s at 44.1 kHz; Spleeter's is 4096).
pub const MAX_FFT_SIZE: usize = 65_536;
/// Most frames a card's network window may span (Spleeter's is 512).
pub const MAX_SEGMENT_FRAMES: usize = 8_192;
/// Most values (frames x bins) of one channel of a card's network window: 16 times
/// Spleeter's 512 x 1024.
pub const MAX_WINDOW_VALUES: usize = 1 << 23;

/// Describes an STFT-domain separation model stored as ONNX.
///
/// The model reads one input `[batch, channels, frames, bins]` of magnitudes (`channels` = 2,
/// the stereo sides) and returns one tensor of that shape per stem: the estimated magnitude
/// of that stem. Masks are the estimates' ratio of squares, `m_i² / Σ_j m_j²`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Human-readable model name.
    pub name: String,
    /// The ONNX file, relative to the models directory.
    pub file: String,
    /// STFT frame length in samples.
    pub fft_size: usize,
    /// STFT hop in samples.
    pub hop: usize,
    /// The lowest `bins` frequency bins are fed to the network.
    pub bins: usize,
    /// Frames per network call.
    pub segment_frames: usize,
    /// Name of the input tensor.
    pub input: String,
    /// Stem names, each also the name of its output tensor.
    pub stems: Vec<String>,
}

impl ModelSpec {
    /// Spleeter's 2-stem model (vocals, accompaniment) as converted by `scripts/setup.sh`.
    pub fn spleeter_2stems() -> Self {
        ModelCard::spleeter_2stems().spec
    }
}

/// A model card: a [`ModelSpec`] plus what a user needs to know about the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCard {
    /// Short identifier, unique among installed cards.
    pub id: String,
    /// Licence of the weights.
    pub licence: String,
    /// Where the weights come from.
    pub source: String,
    /// What the separator runs.
    pub spec: ModelSpec,
}

/// Why a model card was refused.
#[derive(Debug, Error)]
pub enum CardError {
    /// The file could not be read.
    #[error("cannot read model card {path}: {source}")]
    Io {
        /// The card's path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The text is not a card: TOML syntax, a missing or mistyped field.
    #[error("model card {path} is not valid: {reason}")]
    Invalid {
        /// The card's path, or `<text>`.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The card's TOML layout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CardFile {
    id: String,
    name: String,
    file: String,
    licence: String,
    source: String,
    stems: Vec<String>,
    stft: StftSection,
    input: InputSection,
    masks: MaskSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StftSection {
    fft_size: usize,
    hop: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSection {
    tensor: String,
    bins: usize,
    segment_frames: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaskSection {
    combine: String,
}

impl ModelCard {
    /// The card of Spleeter's 2-stem model (`models/cards/spleeter-2stems.toml`).
    pub fn spleeter_2stems() -> Self {
        Self::parse(SPLEETER_CARD, "models/cards/spleeter-2stems.toml")
            .expect("the bundled Spleeter card is valid (checked by a test)")
    }

    /// Whether the card's stems are exactly `names`, in any order.
    pub fn has_stems(&self, names: &[&str]) -> bool {
        same_stems(self.spec.stems.iter().map(String::as_str), names)
    }

    /// Reads a card file.
    pub fn read(path: &Path) -> Result<Self, CardError> {
        let text = std::fs::read_to_string(path).map_err(|source| CardError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a card's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CardError> {
        let invalid = |reason: String| CardError::Invalid {
            path: origin.to_owned(),
            reason,
        };
        let card: CardFile = toml::from_str(text).map_err(|e| invalid(e.message().to_owned()))?;
        if card.masks.combine != "ratio_of_squares" {
            return Err(invalid(format!(
                "masks.combine `{}` is not supported (only `ratio_of_squares`)",
                card.masks.combine
            )));
        }
        if card.stft.fft_size < 2 || card.stft.fft_size % 2 != 0 || card.stft.hop == 0 {
            return Err(invalid(
                "stft.fft_size must be even and stft.hop positive".into(),
            ));
        }
        if card.stft.fft_size > MAX_FFT_SIZE {
            return Err(invalid(format!(
                "stft.fft_size {} is over {MAX_FFT_SIZE}",
                card.stft.fft_size
            )));
        }
        if card.stft.hop > card.stft.fft_size {
            return Err(invalid("stft.hop must not exceed stft.fft_size".into()));
        }
        if card.input.bins == 0 || card.input.bins > card.stft.fft_size / 2 + 1 {
            return Err(invalid(format!(
                "input.bins must be 1..={}",
                card.stft.fft_size / 2 + 1
            )));
        }
        if card.input.segment_frames == 0 {
            return Err(invalid("input.segment_frames must be positive".into()));
        }
        // A window's spectra and masks are allocated whole: bound them before anything is.
        if card.input.segment_frames > MAX_SEGMENT_FRAMES
            || card.input.segment_frames * card.input.bins > MAX_WINDOW_VALUES
        {
            return Err(invalid(format!(
                "input.segment_frames {} x input.bins {} is over {MAX_SEGMENT_FRAMES} frames or \
                 {MAX_WINDOW_VALUES} values a window",
                card.input.segment_frames, card.input.bins
            )));
        }
        let mut names = card.stems.clone();
        names.sort();
        names.dedup();
        if card.stems.is_empty() || names.len() != card.stems.len() {
            return Err(invalid(
                "stems must be a non-empty list of distinct names".into(),
            ));
        }
        Ok(Self {
            id: card.id,
            licence: card.licence,
            source: card.source,
            spec: ModelSpec {
                name: card.name,
                file: card.file,
                fft_size: card.stft.fft_size,
                hop: card.stft.hop,
                bins: card.input.bins,
                segment_frames: card.input.segment_frames,
                input: card.input.tensor,
                stems: card.stems,
            },
        })
    }
}

/// Every `*.card.toml` in `dir`, by file name; a missing directory has none.
pub fn installed_cards(dir: &Path) -> Vec<Result<ModelCard, CardError>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".card.toml"))
        })
        .collect();
    paths.sort();
    paths.iter().map(|path| ModelCard::read(path)).collect()
}

const SPLEETER_CARD: &str = include_str!("../../../models/cards/spleeter-2stems.toml");

/// Whether `own` names exactly the stems in `wanted`, in any order.
pub(crate) fn same_stems<'a>(own: impl IntoIterator<Item = &'a str>, wanted: &[&str]) -> bool {
    let mut own: Vec<&str> = own.into_iter().collect();
    let mut wanted = wanted.to_vec();
    own.sort_unstable();
    wanted.sort_unstable();
    own == wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_card_describes_spleeter() {
        let card = ModelCard::spleeter_2stems();
        assert_eq!(card.id, "spleeter-2stems");
        assert!(card.has_stems(&["accompaniment", "vocals"]));
        assert!(!card.has_stems(&["vocals"]));
        let spec = card.spec;
        assert_eq!(
            (spec.fft_size, spec.hop, spec.bins, spec.segment_frames),
            (4096, 1024, 1024, 512)
        );
        assert_eq!(spec.input, "magnitude");
        assert_eq!(spec.stems, ["vocals", "accompaniment"]);
    }

    #[test]
    fn bad_cards_are_refused_with_the_reason() {
        let cases = [
            ("id = 3", "invalid type"),
            (
                &SPLEETER_CARD.replace("ratio_of_squares", "sum"),
                "not supported",
            ),
            (
                &SPLEETER_CARD.replace("bins = 1024", "bins = 4000"),
                "input.bins",
            ),
            (&SPLEETER_CARD.replace("hop = 1024", "hop = 0"), "stft.hop"),
            (
                &SPLEETER_CARD.replace("fft_size = 4096", "fft_size = 4294967296"),
                "stft.fft_size 4294967296 is over 65536",
            ),
            (
                &SPLEETER_CARD.replace("segment_frames = 512", "segment_frames = 1000000000"),
                "input.segment_frames 1000000000",
            ),
            (
                &SPLEETER_CARD
                    .replace("segment_frames = 512", "segment_frames = 4097")
                    .replace("bins = 1024", "bins = 2049"),
                "values a window",
            ),
            (
                &SPLEETER_CARD.replace("\"accompaniment\"", "\"vocals\""),
                "distinct",
            ),
            (&format!("{SPLEETER_CARD}\nextra = 1"), "unknown field"),
        ];
        for (text, reason) in cases {
            let error = ModelCard::parse(text, "test.toml").unwrap_err().to_string();
            assert!(error.contains(reason), "{error}");
        }
    }
}
