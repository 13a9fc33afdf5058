//! HT-Demucs exported to ONNX in demucs-onnx's layout: input `mix` `[1, 2, segment]` of
//! 44.1 kHz stereo, output `stems` `[1, S, 2, segment]`, waveform in and out.
//!
//! Run as demucs-onnx 0.3.4 runs a single-file model: chunks of one segment every three
//! quarters of a segment, the last one zero-padded, each weighted by a triangular window
//! (a linear fade over the first and last quarter; the last chunk takes the window's first
//! samples only) and overlap-added, then divided by the summed weights (at least 1e-8).

use std::path::Path;

use serde::Deserialize;
use stemscribe_audio::{Audio, PROCESSING_RATE};
use stemscribe_runtime::{Input, Model, Progress};

use crate::family::{Separate, SourceStem};
use crate::SeparationError;

/// Samples per segment of demucs-onnx's exports (7.8 s).
pub const DEMUCS_SEGMENT: usize = 343_980;

/// A loaded HT-Demucs ONNX model, shareable across threads; calls are serialised.
#[derive(Debug)]
pub struct DemucsModel {
    segment: usize,
    sources: Vec<SourceStem>,
    model: Model,
}

/// `{"sources": [...]}` beside a Demucs model.
#[derive(Debug, Deserialize)]
struct SourcesFile {
    sources: Vec<String>,
}

impl DemucsModel {
    /// Wraps a loaded model whose input is `mix` and output `stems`; the stem names come
    /// from `NAME.json` or `MODEL.json` beside its file, or demucs-onnx's default order
    /// (drums, bass, other, vocals, and guitar, piano for six stems).
    pub(crate) fn from_model(model: Model) -> Result<Self, SeparationError> {
        model.require(&["mix"], &["stems"])?;
        let input = model.input("mix").and_then(|i| i.shape.clone());
        let segment = segment_of(input.as_deref()).map_err(|reason| model.mismatch(reason))?;
        let output = model.output("stems").and_then(|o| o.shape.clone());
        let count = match output {
            Some(shape) if shape.len() == 4 && shape[2] == 2 => usize::try_from(shape[1]).ok(),
            other => {
                return Err(model
                    .mismatch(format!(
                        "output `stems` is {other:?}, not [1, stems, 2, samples]"
                    ))
                    .into())
            }
        };
        let sources = sources_for(model.file(), count).map_err(|reason| model.mismatch(reason))?;
        Ok(Self {
            segment,
            sources,
            model,
        })
    }

    /// The stems, in the model's output order.
    pub fn sources(&self) -> &[SourceStem] {
        &self.sources
    }

    /// Samples per network call.
    pub fn segment(&self) -> usize {
        self.segment
    }

    /// Network calls [`Separate::separate`] makes for `samples` samples.
    pub fn chunks(&self, samples: usize) -> usize {
        samples.div_ceil(self.stride()).max(1)
    }

    fn stride(&self) -> usize {
        self.segment - self.segment / 4
    }

    /// Separates 44.1 kHz stereo `audio` into the model's stems.
    fn separate_stems(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        if audio.sample_rate() != PROCESSING_RATE || audio.num_channels() != 2 {
            return Err(SeparationError::InputFormat {
                rate: audio.sample_rate(),
                channels: audio.num_channels(),
            });
        }
        let total = audio.frames();
        let chunks = self.chunks(total);
        let window = transition_window(self.segment);
        let mut out = vec![[vec![0.0f32; total], vec![0.0f32; total]]; self.sources.len()];
        let mut weight = vec![0.0f32; total];
        let mut input = vec![0.0f32; 2 * self.segment];
        for k in 0..chunks {
            let start = k * self.stride();
            let end = (start + self.segment).min(total);
            let len = end - start;
            for c in 0..2 {
                let side = &mut input[c * self.segment..(c + 1) * self.segment];
                side[..len].copy_from_slice(&audio.channel(c)[start..end]);
                side[len..].fill(0.0);
            }
            let stems = self.run_network(&input)?;
            for (s, stem_out) in out.iter_mut().enumerate() {
                for (c, side) in stem_out.iter_mut().enumerate() {
                    let offset = (s * 2 + c) * self.segment;
                    for n in 0..len {
                        side[start + n] += stems[offset + n] * window[n];
                    }
                }
            }
            for n in 0..len {
                weight[start + n] += window[n];
            }
            progress(Progress {
                done: k + 1,
                total: chunks,
            });
        }
        self.sources
            .iter()
            .zip(out)
            .map(|(&stem, mut sides)| {
                // Divided in place: no second copy of a stem is ever held.
                for side in &mut sides {
                    for (v, w) in side.iter_mut().zip(&weight) {
                        *v /= w.max(1e-8);
                    }
                }
                Ok((stem, Audio::new(PROCESSING_RATE, Vec::from(sides))?))
            })
            .collect()
    }

    fn run_network(&self, input: &[f32]) -> Result<Vec<f32>, SeparationError> {
        let shape = [1usize, 2, self.segment];
        let mix = Input {
            name: "mix",
            shape: &shape,
            data: input,
        };
        let stems = self.model.run(&[mix], &["stems"])?.swap_remove(0);
        let wanted = self.sources.len() * 2 * self.segment;
        if stems.data.len() != wanted {
            return Err(self
                .model
                .mismatch(format!(
                    "`stems` has {} values, expected {wanted}",
                    stems.data.len()
                ))
                .into());
        }
        Ok(stems.data)
    }
}

impl Separate for DemucsModel {
    fn file(&self) -> &Path {
        self.model.file()
    }

    fn stems(&self) -> Vec<SourceStem> {
        self.sources.clone()
    }

    fn separate(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        self.separate_stems(audio, progress)
    }
}

/// The segment a `mix` input of `shape` takes: its last dimension (demucs-onnx's 343,980 when
/// it is dynamic), within [`MIN_SEGMENT`]..=[`MAX_SEGMENT`], since every chunk's buffers are
/// allocated from it.
fn segment_of(shape: Option<&[i64]>) -> Result<usize, String> {
    match shape {
        Some(&[_, 2, samples]) if samples < 0 => Ok(DEMUCS_SEGMENT),
        Some(&[_, 2, samples]) => usize::try_from(samples)
            .ok()
            .filter(|n| (MIN_SEGMENT..=MAX_SEGMENT).contains(n))
            .ok_or_else(|| {
                format!(
                    "input `mix` declares {samples} samples a segment, outside \
                     {MIN_SEGMENT}-{MAX_SEGMENT}"
                )
            }),
        other => Err(format!("input `mix` is {other:?}, not [1, 2, samples]")),
    }
}

/// Fewest samples a segment may have (23 ms).
const MIN_SEGMENT: usize = 1_024;
/// Most samples a segment may have (60 s).
const MAX_SEGMENT: usize = 60 * 44_100;

/// The stem names of a Demucs model file: its JSON, or the default order for its count.
fn sources_for(file: &Path, count: Option<usize>) -> Result<Vec<SourceStem>, String> {
    if let Some(json) = crate::family::card_beside(file) {
        let text = std::fs::read_to_string(&json)
            .map_err(|e| format!("cannot read {}: {e}", json.display()))?;
        let parsed: SourcesFile = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not {{\"sources\": [...]}}: {e}", json.display()))?;
        let sources = parsed
            .sources
            .iter()
            .map(|name| {
                SourceStem::from_name(name)
                    .ok_or_else(|| format!("{}: unknown stem {name:?}", json.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if count.is_some_and(|n| n != sources.len()) {
            return Err(format!(
                "{} names {} stems, the model returns {count:?}",
                json.display(),
                sources.len()
            ));
        }
        return Ok(sources);
    }
    use SourceStem::{Bass, Drums, Guitar, Other, Piano, Vocals};
    match count {
        Some(4) => Ok(vec![Drums, Bass, Other, Vocals]),
        Some(6) => Ok(vec![Drums, Bass, Other, Vocals, Guitar, Piano]),
        other => Err(format!(
            "{other:?} stems and no MODEL.json naming them ({{\"sources\": [...]}})"
        )),
    }
}

/// demucs-onnx's window: ones, with linear fades over the first and last quarter.
fn transition_window(segment: usize) -> Vec<f32> {
    let transition = segment / 4;
    let mut window = vec![1.0f32; segment];
    for i in 0..transition {
        // np.linspace(0, 1, transition)
        let fade = if transition > 1 {
            i as f32 / (transition - 1) as f32
        } else {
            0.0
        };
        window[i] = fade;
        window[segment - 1 - i] = fade;
    }
    window
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_out_of_range_is_refused_before_anything_is_allocated() {
        assert_eq!(segment_of(Some(&[1, 2, 343_980])), Ok(343_980));
        assert_eq!(segment_of(Some(&[1, 2, -1])), Ok(DEMUCS_SEGMENT));
        for samples in [0, 1, 1_023, 2_646_001, 1 << 40] {
            let error = segment_of(Some(&[1, 2, samples])).unwrap_err();
            assert!(
                error.contains(&format!("declares {samples} samples")),
                "{error}"
            );
        }
        assert!(segment_of(Some(&[1, 3, 44_100])).is_err());
        assert!(segment_of(None).is_err());
    }

    #[test]
    fn window_fades_over_a_quarter() {
        let w = transition_window(8);
        assert_eq!(w, [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
        let w = transition_window(12);
        assert_eq!(
            w,
            [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.0]
        );
    }
}
