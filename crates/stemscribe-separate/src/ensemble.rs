//! Several models as one, as python-audio-separator's `Ensembler` combines them: every model
//! separates the same input, and the stems of the same name are combined sample by sample,
//! by their mean (`avg_wave`, equal weights) or their median (`median_wave`). A stem only some
//! models give is combined over those.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use stemscribe_audio::Audio;
use stemscribe_runtime::Progress;
use thiserror::Error;

use crate::{Separate, SeparationError, SourceStem};

/// How the stems of the same name are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnsembleMethod {
    /// The mean of the stems, sample by sample (`avg_wave`).
    #[default]
    AvgWave,
    /// The median of the stems, sample by sample (`median_wave`; of an even count, the mean of
    /// the middle two, as numpy's).
    MedianWave,
}

impl EnsembleMethod {
    /// audio-separator's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::AvgWave => "avg_wave",
            Self::MedianWave => "median_wave",
        }
    }
}

impl fmt::Display for EnsembleMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not an [`EnsembleMethod`].
#[derive(Debug, Error)]
#[error("unknown ensemble method {0:?} (known: avg_wave, median_wave)")]
pub struct UnknownEnsembleMethod(pub String);

impl FromStr for EnsembleMethod {
    type Err = UnknownEnsembleMethod;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "avg_wave" => Ok(Self::AvgWave),
            "median_wave" => Ok(Self::MedianWave),
            other => Err(UnknownEnsembleMethod(other.to_owned())),
        }
    }
}

/// Models whose stems are combined by an [`EnsembleMethod`].
#[derive(Debug)]
pub struct Ensemble {
    models: Vec<Box<dyn Separate>>,
    method: EnsembleMethod,
    /// The installed ensemble's file, when it was opened from one.
    file: Option<PathBuf>,
}

impl Ensemble {
    /// An ensemble of `models` (at least one), combined by `method`.
    pub fn new(models: Vec<Box<dyn Separate>>, method: EnsembleMethod) -> Option<Self> {
        (!models.is_empty()).then_some(Self {
            models,
            method,
            file: None,
        })
    }

    /// The same ensemble, named by the installed file `file` (what [`Separate::file`] returns).
    pub fn with_file(mut self, file: PathBuf) -> Self {
        self.file = Some(file);
        self
    }

    /// The files of its models, in order.
    pub fn members(&self) -> impl Iterator<Item = &Path> {
        self.models.iter().map(|model| model.file())
    }

    /// How the stems are combined.
    pub fn method(&self) -> EnsembleMethod {
        self.method
    }
}

impl Separate for Ensemble {
    /// The installed ensemble's file, else its first model's.
    fn file(&self) -> &Path {
        self.file
            .as_deref()
            .unwrap_or_else(|| self.models[0].file())
    }

    /// Every stem any model gives, in the order they first appear.
    fn stems(&self) -> Vec<SourceStem> {
        let mut stems = Vec::new();
        for stem in self.models.iter().flat_map(|m| m.stems()) {
            if !stems.contains(&stem) {
                stems.push(stem);
            }
        }
        stems
    }

    fn separate(
        &self,
        audio: &Audio,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(SourceStem, Audio)>, SeparationError> {
        let count = self.models.len();
        let mut gathered: Vec<(SourceStem, Vec<Audio>)> = Vec::new();
        let mut done_before = 0;
        for (index, model) in self.models.iter().enumerate() {
            let mut last = Progress { done: 0, total: 0 };
            let stems = model.separate(audio, &mut |p| {
                last = p;
                // The models left are assumed to take as many steps as this one.
                progress(Progress {
                    done: done_before + p.done,
                    total: done_before + p.total * (count - index),
                });
            })?;
            done_before += last.total;
            for (stem, audio) in stems {
                match gathered.iter_mut().find(|(known, _)| *known == stem) {
                    Some((_, list)) => list.push(audio),
                    None => gathered.push((stem, vec![audio])),
                }
            }
        }
        gathered
            .into_iter()
            .map(|(stem, list)| Ok((stem, combine(&list, self.method)?)))
            .collect()
    }
}

/// `stems` (same rate and channels) combined sample by sample; shorter ones count as silence
/// past their end, as the reference pads them.
fn combine(stems: &[Audio], method: EnsembleMethod) -> Result<Audio, SeparationError> {
    let first = &stems[0];
    if stems.len() == 1 {
        return Ok(first.clone());
    }
    let frames = stems.iter().map(Audio::frames).max().unwrap_or(0);
    let sample = |audio: &Audio, channel: usize, i: usize| {
        audio
            .channels()
            .get(channel)
            .and_then(|c| c.get(i))
            .copied()
            .unwrap_or(0.0)
    };
    let count = stems.len();
    let mut values = vec![0.0f32; count];
    let channels = (0..first.channels().len())
        .map(|channel| {
            (0..frames)
                .map(|i| match method {
                    EnsembleMethod::AvgWave => {
                        let mut sum = 0.0f32;
                        for audio in stems {
                            sum += sample(audio, channel, i);
                        }
                        sum / count as f32
                    }
                    EnsembleMethod::MedianWave => {
                        for (value, audio) in values.iter_mut().zip(stems) {
                            *value = sample(audio, channel, i);
                        }
                        values.sort_unstable_by(f32::total_cmp);
                        if count % 2 == 1 {
                            values[count / 2]
                        } else {
                            (values[count / 2 - 1] + values[count / 2]) / 2.0
                        }
                    }
                })
                .collect()
        })
        .collect();
    Ok(Audio::new(first.sample_rate(), channels)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mono(samples: &[f32]) -> Audio {
        Audio::new(44_100, vec![samples.to_vec()]).unwrap()
    }

    #[test]
    fn the_mean_and_the_median_are_numpys() {
        let stems = [
            mono(&[1.0, -2.0, 3.0]),
            mono(&[4.0, 0.0, -3.0]),
            mono(&[0.0, 5.0]),
        ];
        let mean = combine(&stems, EnsembleMethod::AvgWave).unwrap();
        assert_eq!(mean.channels()[0], [5.0 / 3.0, 1.0, 0.0]);
        let median = combine(&stems, EnsembleMethod::MedianWave).unwrap();
        assert_eq!(median.channels()[0], [1.0, 0.0, 0.0]);
        let even = combine(&stems[..2], EnsembleMethod::MedianWave).unwrap();
        assert_eq!(even.channels()[0], [2.5, -1.0, 0.0]);
        assert_eq!(
            "median_wave".parse::<EnsembleMethod>().unwrap(),
            EnsembleMethod::MedianWave
        );
        assert!("max_spec".parse::<EnsembleMethod>().is_err());
    }
}
