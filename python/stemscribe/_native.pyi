"""Type stubs of the native module (``python/src/lib.rs``)."""

from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import numpy.typing as npt

__version__: str
PROCESSING_RATE: int

class StemscribeError(Exception): ...
class DecodeError(StemscribeError): ...
class ModelError(StemscribeError): ...
class SeparationError(StemscribeError): ...
class TranscriptionError(StemscribeError): ...
class EncodeError(StemscribeError): ...
class NoOutputError(StemscribeError): ...
class SetupError(StemscribeError): ...

def setup(
    dest: Optional[str] = None,
    gpu: bool = False,
    cache: Optional[str] = None,
    log: Optional[Callable[[str], object]] = None,
) -> Path: ...
def default_models_dir() -> Path: ...

class Note:
    """One sung note."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def pitch(self) -> float: ...
    @property
    def velocity(self) -> int: ...

class Transcription:
    """The notes of a sung melody."""

    @property
    def notes(self) -> List[Note]: ...
    @property
    def track(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    def to_json(self) -> str: ...
    def to_midi_bytes(self) -> bytes: ...
    def __len__(self) -> int: ...

class Engine:
    """Loaded models, shared by any number of threads."""

    def __init__(
        self,
        models_dir: Optional[str] = None,
        threads: Optional[int] = None,
        device: str = "auto",
        pitch_model: str = "swift-f0",
        two_stem_model: Optional[str] = None,
        separation_only: bool = False,
        sessions: Optional[int] = None,
    ) -> None: ...
    @property
    def device(self) -> str: ...
    def separate(
        self,
        model: str,
        path: Optional[str] = None,
        samples: Optional[npt.NDArray[np.float32]] = None,
        sample_rate: Optional[int] = None,
        progress: Optional[Callable[[int, int], object]] = None,
    ) -> Dict[str, npt.NDArray[np.float32]]: ...
    def transcribe(
        self,
        path: Optional[str] = None,
        samples: Optional[npt.NDArray[np.float32]] = None,
        sample_rate: Optional[int] = None,
        progress: Optional[Callable[[int, int], object]] = None,
    ) -> Transcription: ...

def encode_audio(
    samples: npt.NDArray[np.float32],
    sample_rate: int,
    format: str = "wav",
    output_sample_rate: Optional[int] = None,
    channels: int = 2,
) -> bytes: ...
