"""Separate or transcribe a catalogue on a Ray cluster.

::

    from stemscribe.ray import separate_files, transcribe_files

    results = separate_files(paths, "/shared/stems", model="bs_4track_vocal", address="auto")
    failed = [r for r in results if r.status == "failed"]

Each worker is a Ray actor that builds one :class:`stemscribe.Engine` when it starts and
keeps it for every file it gets; the driver hands each idle worker the next file. Workers read
the inputs and write the outputs themselves, so ``paths`` and ``out_dir`` must name the same
files on every node (a shared filesystem such as NFS, mounted at the same path). Each node
needs the ``stemscribe`` package and its models (``python -m stemscribe setup`` on each node,
or a shared ``models_dir``).

Outputs are those of ``stemscribe batch``: input ``song.mp3`` gets the folder
``out_dir/song/`` with every stem of the model's family (``vocals.wav``, ...; 32-bit float WAV
as ``--stems`` writes them, unless ``format`` says otherwise), or with :func:`transcribe_files`
``song.mid`` and ``song.json``. A record ``out_dir/song/stemscribe.json`` (``status``,
``seconds``, ``error``) is written last; a file whose record says ``ok`` or ``no_output`` is
skipped on the next run, so an interrupted run resumes (``stemscribe batch`` on a flat folder
writes the same folders and records, so each resumes the other's work). A file that fails is recorded and reported; the run goes on.
A worker that dies (a crash, memory) is replaced, and the file it held is reported as failed.
The driver writes ``summary.csv`` (``file,status,seconds,error``, as ``stemscribe batch``
does) to ``out_dir`` unless ``summary`` names another file or ``False``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

try:
    import ray
except ImportError as error:  # pragma: no cover - exercised without ray installed
    raise ImportError(
        "stemscribe.ray needs Ray: pip install 'stemscribe[ray]' (or pip install ray)"
    ) from error

import stemscribe

#: What ``progress=`` takes: ``"auto"`` (a tqdm bar when tqdm is installed, else nothing),
#: ``True`` (a tqdm bar; ImportError without tqdm), ``False``, or ``callback(done, total)``.
ProgressArg = Union[bool, str, Callable[[int, int], object]]

#: A record's name in each input's output folder (as ``stemscribe batch`` names it).
RECORD = "stemscribe.json"

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["FileResult", "separate_files", "transcribe_files", "RECORD"]


@dataclass(frozen=True)
class FileResult:
    """How one input ended: ``status`` is ``ok``, ``no_output`` (nothing sung), ``skipped``
    (done by an earlier run) or ``failed`` (``error`` says why); ``seconds`` of wall time on
    its worker; ``worker`` is the node it ran on."""

    file: str
    status: str
    seconds: float
    error: str = ""
    worker: str = ""


def _output_folder(out_dir: str, path: str) -> str:
    return os.path.join(out_dir, Path(path).stem)


def _finished_before(folder: str) -> bool:
    try:
        with open(os.path.join(folder, RECORD), encoding="utf-8") as record:
            return json.load(record).get("status") in ("ok", "no_output")
    except (OSError, ValueError, AttributeError):
        return False


class _Worker:
    """One engine on one Ray worker process; runs files one at a time."""

    def __init__(self, task: str, options: dict, engine: dict) -> None:
        self._task = task
        self._options = options
        self._engine = stemscribe.Engine(**engine)
        self._node = ray.get_runtime_context().get_node_id()

    def ready(self) -> str:
        """The node this worker runs on (called once, so that a load failure shows early)."""
        return self._node

    def run(self, path: str, out_dir: str) -> FileResult:
        """Does one file unless its record says it was done; never raises for the file."""
        started = time.perf_counter()
        folder = _output_folder(out_dir, path)
        if _finished_before(folder):
            return FileResult(path, "skipped", 0.0, "", self._node)
        try:
            os.makedirs(folder, exist_ok=True)
            status = self._separate(path, folder) if self._task == "separate" else self._transcribe(path, folder)
            error = ""
        except stemscribe.NoOutputError:
            status, error = "no_output", ""
        except (stemscribe.StemscribeError, OSError, ValueError) as failure:
            status, error = "failed", f"{type(failure).__name__}: {failure}"
        seconds = time.perf_counter() - started
        try:
            record = {"status": status, "seconds": round(seconds, 3), "error": error}
            partial = os.path.join(folder, RECORD + ".partial")
            with open(partial, "w", encoding="utf-8") as out:
                json.dump(record, out)
                out.write("\n")
            os.replace(partial, os.path.join(folder, RECORD))
        except OSError as failure:
            status, error = "failed", f"{error} (and the record: {failure})".strip()
        return FileResult(path, status, seconds, error, self._node)

    def _separate(self, path: str, folder: str) -> str:
        stems = self._engine.separate(path, model=self._options["model"])
        stemscribe.save_stems(stems, folder, format=self._options["format"])
        return "ok"

    def _transcribe(self, path: str, folder: str) -> str:
        melody = self._engine.transcribe(path)
        name = Path(path).stem
        melody.to_midi(os.path.join(folder, f"{name}.mid"))
        Path(folder, f"{name}.json").write_text(melody.to_json(), encoding="utf-8")
        return "ok"


def _check_inputs(paths: Iterable[PathLike]) -> List[str]:
    """Absolute input paths; refuses two inputs that would share an output folder."""
    inputs = [os.path.abspath(os.fspath(p)) for p in paths]
    by_stem: Dict[str, List[str]] = {}
    for path in inputs:
        by_stem.setdefault(Path(path).stem, []).append(path)
    clashes = {stem: files for stem, files in by_stem.items() if len(files) > 1}
    if clashes:
        stem, files = next(iter(clashes.items()))
        raise ValueError(
            f"{len(clashes)} output folder(s) would be shared, e.g. {stem!r} by {', '.join(files)}; "
            "rename the inputs or run them in separate out_dirs"
        )
    return inputs


def _bar_class(progress: ProgressArg):
    """tqdm's class when ``progress`` asks for a bar and tqdm is installed, else None.

    Raises ImportError only for ``progress=True`` without tqdm, and ValueError for a value
    that is not a progress argument."""
    if progress is True or (isinstance(progress, str) and progress == "auto"):
        return stemscribe._tqdm(required=progress is True)
    if progress is False or progress is None or callable(progress):
        return None
    raise ValueError(f"progress must be 'auto', True, False or a callable, not {progress!r}")


class _Progress:
    """A tqdm bar, a callback ``(done, total)``, or nothing."""

    def __init__(self, progress: ProgressArg, bar_class, total: int, task: str) -> None:
        """``bar_class``: what :func:`_bar_class` gave for ``progress``."""
        self._bar = None
        self._callback = None
        if bar_class is not None:
            self._bar = bar_class(total=total, desc=task, unit="file")
        elif callable(progress):
            self._callback = progress
        self._total = total
        self._done = 0

    def advance(self, result: FileResult) -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.update(1)
            if result.status == "failed":
                self._bar.write(f"failed: {result.file}: {result.error}")
        if self._callback is not None:
            self._callback(self._done, self._total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _run(
    task: str,
    paths: Iterable[PathLike],
    out_dir: PathLike,
    options: dict,
    engine: dict,
    address: Optional[str],
    workers: Optional[int],
    threads_per_worker: int,
    gpus_per_worker: float,
    progress: ProgressArg,
    summary: Union[None, bool, PathLike],
) -> List[FileResult]:
    inputs = _check_inputs(paths)
    bar_class = _bar_class(progress)  # refuses what it cannot honour before any work
    out = os.path.abspath(os.fspath(out_dir))
    if threads_per_worker < 1:
        raise ValueError("threads_per_worker must be at least 1")
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    try:
        if workers is None:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            workers = max(1, cpus // threads_per_worker)
        workers = max(1, min(workers, len(inputs))) if inputs else 0
        actor = ray.remote(num_cpus=threads_per_worker, num_gpus=gpus_per_worker)(_Worker)
        engine = {**engine, "threads": threads_per_worker}

        def start() -> "ray.actor.ActorHandle":
            return actor.remote(task, options, engine)

        pool = [start() for _ in range(workers)]
        try:
            ray.get([w.ready.remote() for w in pool])
        except ray.exceptions.RayActorError as error:
            raise stemscribe.ModelError(f"a worker could not load the engine: {error}") from error
        results = _schedule(pool, start, inputs, out, _Progress(progress, bar_class, len(inputs), task))
    finally:
        if started_ray:
            ray.shutdown()
    results.sort(key=lambda r: r.file)
    if summary is not False:
        target = os.path.join(out, "summary.csv") if summary in (None, True) else os.fspath(summary)
        _write_summary(target, results)
    return results


def _schedule(pool: list, start: Callable, inputs: Sequence[str], out: str, progress: _Progress) -> List[FileResult]:
    """Keeps every worker busy with one file until all are done; replaces dead workers."""
    queue = list(reversed(inputs))
    pending: Dict["ray.ObjectRef", tuple] = {}
    results: List[FileResult] = []
    replacements = len(pool)

    def give(worker) -> None:
        if queue:
            path = queue.pop()
            pending[worker.run.remote(path, out)] = (worker, path)

    try:
        for worker in pool:
            give(worker)
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            worker, path = pending.pop(done)
            try:
                result = ray.get(done)
            except ray.exceptions.RayTaskError as error:
                # An unexpected exception in the worker's code: the file failed, the worker lives.
                result = FileResult(path, "failed", 0.0, str(getattr(error, "cause", None) or error))
            except ray.exceptions.RayError as error:
                result = FileResult(path, "failed", 0.0, f"the worker died: {type(error).__name__}: {error}")
                ray.kill(worker, no_restart=True)
                worker = start() if replacements > 0 else None
                replacements -= 1
            results.append(result)
            progress.advance(result)
            if worker is not None:
                give(worker)
        for path in reversed(queue):
            result = FileResult(path, "failed", 0.0, "no worker left: every worker died")
            results.append(result)
            progress.advance(result)
    finally:
        progress.close()
    return results


def _write_summary(path: str, results: Sequence[FileResult]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["file", "status", "seconds", "error"])
        for r in results:
            writer.writerow([r.file, r.status, f"{r.seconds:.3f}", r.error])


def separate_files(
    paths: Iterable[PathLike],
    out_dir: PathLike,
    model: str = "2track_vocal",
    *,
    format: str = "wav-float",
    address: Optional[str] = None,
    workers: Optional[int] = None,
    threads_per_worker: int = 1,
    gpus_per_worker: float = 0,
    models_dir: Optional[PathLike] = None,
    device: str = "cpu",
    two_stem_model: Optional[str] = None,
    progress: ProgressArg = "auto",
    summary: Union[None, bool, PathLike] = None,
) -> List[FileResult]:
    """Separates every file into ``out_dir/<file stem>/<stem>.<ext>`` on a Ray cluster.

    ``model``: ``2track_*`` or ``bs_4track_*`` (every stem of its family is written);
    ``format``: ``wav-float`` (as ``--stems``), ``wav``, ``mp3`` or ``aac``; ``address``: as
    :func:`ray.init` takes it (``None`` starts a local cluster, ``"auto"`` joins the running
    one; ignored when Ray is already initialised); ``workers``: actors, by default one per
    ``threads_per_worker`` CPUs of the cluster; ``gpus_per_worker`` with ``device="cuda"``;
    ``progress``: ``"auto"`` (a tqdm bar when tqdm is installed, else none), ``True`` (a
    tqdm bar, ImportError without tqdm), ``False``, or ``callback(done, total)``. Returns one
    :class:`FileResult` per input, sorted by path.
    """
    if format not in stemscribe.FORMATS:
        raise ValueError(f"unknown format {format!r} (known: {', '.join(stemscribe.FORMATS)})")
    if model not in stemscribe.MODELS:
        raise ValueError(f"unknown model {model!r} (known: {', '.join(stemscribe.MODELS)})")
    engine = {
        "models_dir": None if models_dir is None else os.fspath(models_dir),
        "device": device,
        "two_stem_model": two_stem_model,
        "separation_only": True,
    }
    options = {"model": model, "format": format}
    return _run("separate", paths, out_dir, options, engine, address, workers,
                threads_per_worker, gpus_per_worker, progress, summary)


def transcribe_files(
    paths: Iterable[PathLike],
    out_dir: PathLike,
    *,
    address: Optional[str] = None,
    workers: Optional[int] = None,
    threads_per_worker: int = 1,
    gpus_per_worker: float = 0,
    models_dir: Optional[PathLike] = None,
    device: str = "cpu",
    pitch_model: str = "swift-f0",
    progress: ProgressArg = "auto",
    summary: Union[None, bool, PathLike] = None,
) -> List[FileResult]:
    """Transcribes the sung melody of every file into ``out_dir/<file stem>/<file stem>.mid``
    and ``.json`` on a Ray cluster; a file with nothing sung ends ``no_output``. Arguments as
    :func:`separate_files`."""
    engine = {
        "models_dir": None if models_dir is None else os.fspath(models_dir),
        "device": device,
        "pitch_model": pitch_model,
    }
    return _run("transcribe", paths, out_dir, {}, engine, address, workers,
                threads_per_worker, gpus_per_worker, progress, summary)
