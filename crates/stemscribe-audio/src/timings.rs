//! Where the time of a task goes, stage by stage: decode, resample, STFT, network, masks,
//! inverse STFT, encode, model load, and the transcription's own stages.
//!
//! A caller that wants the figures runs its task inside [`Timings::collect`]; the code of
//! each stage reports through [`measure`], which adds the stage's wall time on the calling
//! thread to the collection open on that thread (two thread-local lookups when none is). A
//! stage measured inside another counts in the inner stage only, so the stages never overlap
//! and add up to at most the task's wall time. Stages are timed on the thread that drives the
//! task (a parallel part is timed as the wall time of the whole part); work that a helper
//! thread does while the driving thread runs another stage counts only for the time the driving
//! thread then waits for it ([`record`]). Concurrent tasks on other threads never mix their
//! figures.

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, Instant};

/// A stage of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Loading the runtime and the models.
    ModelLoad,
    /// Reading and decoding the input file.
    Decode,
    /// Converting sample rates.
    Resample,
    /// Short-time Fourier transforms of the input (and of the window magnitudes a network reads).
    Stft,
    /// ONNX Runtime running a network (separation or pitch tracking).
    Network,
    /// Turning a network's estimates into masks and applying them.
    Masks,
    /// Inverse STFTs and overlap-add back to audio.
    InverseStft,
    /// Derived stems, hum and noise removal after the separation network.
    PostProcess,
    /// What transcription measures around the pitch network: levels, harmonics, envelopes.
    PitchFeatures,
    /// Note segmentation and the singing decision.
    Notes,
    /// Encoding and writing the output files.
    Encode,
}

impl Stage {
    /// Every stage, in the order of a task.
    pub const ALL: [Stage; 11] = [
        Stage::ModelLoad,
        Stage::Decode,
        Stage::Resample,
        Stage::Stft,
        Stage::Network,
        Stage::Masks,
        Stage::InverseStft,
        Stage::PostProcess,
        Stage::PitchFeatures,
        Stage::Notes,
        Stage::Encode,
    ];

    /// The stage's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Stage::ModelLoad => "model load",
            Stage::Decode => "decode",
            Stage::Resample => "resample",
            Stage::Stft => "STFT",
            Stage::Network => "network",
            Stage::Masks => "masks",
            Stage::InverseStft => "inverse STFT",
            Stage::PostProcess => "derived stems, hum, noise",
            Stage::PitchFeatures => "pitch features",
            Stage::Notes => "notes and decision",
            Stage::Encode => "encode",
        }
    }
}

/// Seconds spent per [`Stage`] by one task, and the task's wall time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    spent: [Duration; Stage::ALL.len()],
    wall: Duration,
}

thread_local! {
    /// The collections open on this thread, innermost last.
    static OPEN: RefCell<Vec<[Duration; Stage::ALL.len()]>> = const { RefCell::new(Vec::new()) };
    /// For each [`measure`] running on this thread, innermost last, the time of the stages
    /// measured inside it so far.
    static INNER: RefCell<Vec<Duration>> = const { RefCell::new(Vec::new()) };
}

impl Timings {
    /// Runs `task`, returning what it returned and the time its stages reported on this
    /// thread. Collections nest: an inner one's stages count in the outer one too.
    pub fn collect<R>(task: impl FnOnce() -> R) -> (R, Timings) {
        OPEN.with(|open| open.borrow_mut().push(Default::default()));
        let started = Instant::now();
        let result = task();
        let wall = started.elapsed();
        let spent = OPEN
            .with(|open| open.borrow_mut().pop())
            .unwrap_or_default();
        OPEN.with(|open| {
            if let Some(outer) = open.borrow_mut().last_mut() {
                for (o, s) in outer.iter_mut().zip(&spent) {
                    *o += *s;
                }
            }
        });
        (result, Timings { spent, wall })
    }

    /// Time spent in `stage`.
    pub fn get(&self, stage: Stage) -> Duration {
        self.spent[stage as usize]
    }

    /// The task's wall time.
    pub fn wall(&self) -> Duration {
        self.wall
    }

    /// Wall time no stage accounts for.
    pub fn other(&self) -> Duration {
        self.wall.saturating_sub(self.spent.iter().sum())
    }

    /// Adds `other`'s stages and wall time to these.
    pub fn add(&mut self, other: &Timings) {
        for (a, b) in self.spent.iter_mut().zip(&other.spent) {
            *a += *b;
        }
        self.wall += other.wall;
    }
}

impl fmt::Display for Timings {
    /// One line per stage that took time, then the rest and the total: seconds and share.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wall = self.wall.as_secs_f64().max(1e-9);
        let line = |f: &mut fmt::Formatter<'_>, name: &str, d: Duration| {
            writeln!(
                f,
                "{name:>26} {:>8.3} s {:>5.1}%",
                d.as_secs_f64(),
                100.0 * d.as_secs_f64() / wall
            )
        };
        for stage in Stage::ALL {
            if !self.get(stage).is_zero() {
                line(f, stage.name(), self.get(stage))?;
            }
        }
        line(f, "other", self.other())?;
        line(f, "total", self.wall)
    }
}

/// Counts `spent` in `stage` of the collection open on this thread, if any: for work that ran
/// on another thread while this one waited for it ([`measure`] times work on this thread).
pub fn record(stage: Stage, spent: Duration) {
    INNER.with(|inner| {
        if let Some(parent) = inner.borrow_mut().last_mut() {
            *parent += spent;
        }
    });
    OPEN.with(|open| {
        if let Some(current) = open.borrow_mut().last_mut() {
            current[stage as usize] += spent;
        }
    });
}

/// Runs `work` as part of `stage`: its wall time counts in the collection open on this
/// thread, if any ([`Timings::collect`]).
pub fn measure<R>(stage: Stage, work: impl FnOnce() -> R) -> R {
    INNER.with(|inner| inner.borrow_mut().push(Duration::ZERO));
    let started = Instant::now();
    let result = work();
    let elapsed = started.elapsed();
    let nested = INNER.with(|inner| {
        let mut inner = inner.borrow_mut();
        let nested = inner.pop().unwrap_or_default();
        if let Some(parent) = inner.last_mut() {
            *parent += elapsed;
        }
        nested
    });
    OPEN.with(|open| {
        if let Some(current) = open.borrow_mut().last_mut() {
            current[stage as usize] += elapsed.saturating_sub(nested);
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    #[test]
    fn stages_add_up_within_the_wall_time() {
        let ((), timings) = Timings::collect(|| {
            measure(Stage::Decode, || busy(20));
            measure(Stage::Network, || busy(30));
            measure(Stage::Network, || busy(10));
            busy(5);
        });
        assert!(timings.get(Stage::Decode) >= Duration::from_millis(20));
        assert!(timings.get(Stage::Network) >= Duration::from_millis(40));
        assert_eq!(timings.get(Stage::Encode), Duration::ZERO);
        assert!(timings.other() >= Duration::from_millis(5), "{timings}");
        assert!(timings.wall() >= Duration::from_millis(65));
        let report = timings.to_string();
        assert!(
            report.contains("network") && report.contains("total"),
            "{report}"
        );
        assert!(!report.contains("encode"), "{report}");
    }

    #[test]
    fn nothing_is_collected_outside_a_collection_or_on_other_threads() {
        measure(Stage::Decode, || busy(1));
        let ((), timings) = Timings::collect(|| {
            std::thread::spawn(|| measure(Stage::Encode, || busy(10)))
                .join()
                .expect("thread");
        });
        assert_eq!(timings.get(Stage::Encode), Duration::ZERO);
    }

    #[test]
    fn recorded_time_counts_in_its_stage_and_not_in_the_enclosing_one() {
        let ((), timings) = Timings::collect(|| {
            measure(Stage::Network, || {
                busy(20);
                record(Stage::Stft, Duration::from_millis(15));
            });
            record(Stage::Masks, Duration::from_millis(3));
        });
        assert_eq!(timings.get(Stage::Stft), Duration::from_millis(15));
        assert_eq!(timings.get(Stage::Masks), Duration::from_millis(3));
        let network = timings.get(Stage::Network);
        assert!(
            network >= Duration::from_millis(5) && network < Duration::from_millis(20),
            "{timings}"
        );
    }

    #[test]
    fn a_stage_inside_another_counts_in_the_inner_one_only() {
        let ((), timings) = Timings::collect(|| {
            measure(Stage::Decode, || {
                busy(10);
                measure(Stage::Resample, || busy(30));
            });
        });
        let (decode, resample) = (timings.get(Stage::Decode), timings.get(Stage::Resample));
        assert!(resample >= Duration::from_millis(30), "{timings}");
        assert!(
            decode >= Duration::from_millis(10) && decode < Duration::from_millis(30),
            "{timings}"
        );
        assert!(decode + resample <= timings.wall(), "{timings}");
    }

    #[test]
    fn an_inner_collection_counts_in_the_outer_one() {
        let ((), outer) = Timings::collect(|| {
            let ((), inner) = Timings::collect(|| measure(Stage::Masks, || busy(10)));
            assert!(inner.get(Stage::Masks) >= Duration::from_millis(10));
        });
        assert!(outer.get(Stage::Masks) >= Duration::from_millis(10));
    }
}
