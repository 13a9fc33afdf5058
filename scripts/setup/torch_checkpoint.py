"""Read a PyTorch zip checkpoint with numpy alone (no torch), safely.

A checkpoint's `data.pkl` is a Python pickle, and unpickling the usual way runs whatever code
it names. This reader never does: it resolves only the names a state dict needs (tensor
rebuilds, storage types, ordered dicts, plain builtin containers and numbers), reads the
OmegaConf and typing objects that Lightning pickles into hyper-parameters as inert stand-ins,
and refuses anything else with a `CheckpointError` naming what it found, before calling it.
Every tensor is checked against its storage (shape, strides, offset) and every archive entry
against size limits before it is read, so a hostile or truncated file is an error, never a
read out of bounds or an allocation it chose. The pickle is read by Python's own (pure Python)
unpickler, whose memo is a dict: the C one sizes an array by the largest memo index a file
names, so a few bytes could make it allocate and clear gigabytes. Tensors may not copy out more
elements in all than `MAX_COPY_FACTOR` times what the storages read so far hold (a stride of 0
would otherwise let one small storage become a huge tensor).
"""

import builtins
import io
import pickle
import struct
import zipfile
import zlib

import numpy as np

DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64,
          "HalfStorage": np.float16, "IntStorage": np.int32, "BFloat16Storage": None}

# The builtins a state dict's pickle may construct: containers and numbers, nothing that
# reaches attributes, code, files or imports.
SAFE_BUILTINS = {"set", "frozenset", "list", "dict", "tuple", "int", "float", "bool", "str",
                 "complex", "slice"}

# Tensors are checked against their storage; no single storage or tensor may claim more.
MAX_ENTRY_BYTES = 8 << 30
MAX_TENSOR_ELEMENTS = 2 << 30
# A stored (uncompressed) entry is what torch writes; a compressed one may expand this much.
MAX_COMPRESSION_RATIO = 20
MAX_PICKLE_BYTES = 256 << 20
# Views and tied weights read a storage more than once; more than this many times is hostile.
MAX_COPY_FACTOR = 4
MAX_COPY_SLACK_BYTES = 16 << 20


class CheckpointError(ValueError):
    """The file is not a checkpoint this reader accepts; the message says why."""


class StateDict(dict):
    """A dict that takes the attributes (`_metadata`) pickle sets on a torch state dict."""


class StandIn:
    """An object of a class that is not importable here; keeps the state pickle gives it."""

    def __init__(self, *args, **kwargs):
        self.__dict__["args"] = args

    def __setstate__(self, state):
        self.__dict__["state"] = state


_STAND_INS = {}


def _stand_in(module, name):
    key = f"{module}.{name}"
    if key not in _STAND_INS:
        _STAND_INS[key] = type(name, (StandIn,), {"__module__": "torch_checkpoint.stand_in"})
    return _STAND_INS[key]


def _check_entry(info, path):
    if info.flag_bits & 0x1:
        raise CheckpointError(f"{path}: {info.filename} is encrypted")
    if info.file_size > MAX_ENTRY_BYTES:
        raise CheckpointError(f"{path}: {info.filename} claims {info.file_size} bytes, more than "
                              f"{MAX_ENTRY_BYTES >> 30} GiB")
    if info.compress_type != zipfile.ZIP_STORED and \
            info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1) + 4096:
        raise CheckpointError(f"{path}: {info.filename} expands {info.file_size} bytes from "
                              f"{info.compress_size}: not a checkpoint")


def _whole(value, what, path):
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"{path}: a tensor's {what} is {type(value).__name__}, not an integer")
    return value


# What a damaged archive raises from zipfile (bad headers, offsets, compression, encryption).
ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError,
                  NotImplementedError, ValueError, OverflowError)


def load(path):
    """Return the object a torch zip checkpoint holds, tensors as numpy arrays."""
    try:
        return _load(path)
    except CheckpointError:
        raise
    except ARCHIVE_ERRORS as e:
        raise CheckpointError(f"{path}: a damaged archive ({type(e).__name__}: {e!s:.200})") from e


def _load(path):
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a PyTorch zip checkpoint ({e}); legacy "
                              "(pre-1.6) pickled checkpoints are not read") from e
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise CheckpointError(f"{path} holds {len(pickles)} data.pkl entries, not one")
        pkl = pickles[0]
        root = pkl[: -len("data.pkl")]
        info = archive.getinfo(pkl)
        _check_entry(info, path)
        if info.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(f"{path}: its pickle is {info.file_size} bytes, more than a "
                                  "state dict needs")
        storages = {}
        # Bytes tensors may still copy out: grows with each storage read, so entries an
        # archive merely lists (or sizes it claims) buy nothing.
        budget = MAX_COPY_SLACK_BYTES

        def storage(dtype, key):
            nonlocal budget
            if not isinstance(key, str) or "/" in key or "\\" in key or key in ("", ".", ".."):
                raise CheckpointError(f"{path}: a storage key {key!r} is not a plain name")
            if key not in storages:
                name = f"{root}data/{key}"
                try:
                    entry = archive.getinfo(name)
                except KeyError as e:
                    raise CheckpointError(f"{path}: storage {key} is missing (truncated?)") from e
                _check_entry(entry, path)
                raw = archive.read(name)
                if len(raw) % np.dtype(dtype).itemsize:
                    raise CheckpointError(f"{path}: storage {key} is {len(raw)} bytes, not a "
                                          f"whole number of {np.dtype(dtype).name}")
                storages[key] = np.frombuffer(raw, dtype=dtype)
                budget += MAX_COPY_FACTOR * len(raw)
            data = storages[key]
            if data.dtype != np.dtype(dtype):
                raise CheckpointError(f"{path}: storage {key} is read as two types")
            return data

        def rebuild(data, offset, size, stride, *_):
            nonlocal budget
            if not isinstance(data, np.ndarray) or data.ndim != 1:
                raise CheckpointError(f"{path}: a tensor is rebuilt from something that is not "
                                      "a storage")
            offset = _whole(offset, "offset", path)
            if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)) \
                    or len(size) != len(stride) or len(size) > 16:
                raise CheckpointError(f"{path}: a tensor's shape {size!r} and strides {stride!r} "
                                      "do not match")
            size = [_whole(s, "size", path) for s in size]
            stride = [_whole(s, "stride", path) for s in stride]
            if offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
                raise CheckpointError(f"{path}: a tensor has a negative offset, size or stride")
            elements = 1
            for s in size:
                elements *= s
            if elements > MAX_TENSOR_ELEMENTS:
                raise CheckpointError(f"{path}: a tensor of shape {tuple(size)} is too large")
            if elements:
                last = offset + sum((s - 1) * st for s, st in zip(size, stride))
                if last >= len(data):
                    raise CheckpointError(f"{path}: a tensor of shape {tuple(size)} reaches "
                                          f"element {last} of a storage of {len(data)}")
            elif offset > len(data):
                raise CheckpointError(f"{path}: a tensor starts past its storage")
            itemsize = data.dtype.itemsize
            budget -= elements * itemsize
            if budget < 0:
                raise CheckpointError(f"{path}: its tensors read their storages more than "
                                      f"{MAX_COPY_FACTOR} times over (a tensor of shape "
                                      f"{tuple(size)} with strides {tuple(stride)})")
            return np.lib.stride_tricks.as_strided(
                data[offset:], shape=tuple(size),
                strides=tuple(s * itemsize for s in stride)).copy()

        class Unpickler(pickle._Unpickler):
            def find_class(self, module, name):
                if module == "torch._utils" and name == "_rebuild_tensor_v2":
                    return rebuild
                if module == "torch" and name in DTYPES:
                    if DTYPES[name] is None:
                        raise CheckpointError(f"{path}: torch.{name} tensors are not supported")
                    return DTYPES[name]
                if module == "collections" and name == "OrderedDict":
                    return StateDict
                if module in ("builtins", "__builtin__") and name in SAFE_BUILTINS | {"long"}:
                    return int if name == "long" else getattr(builtins, name)
                if module.split(".")[0] in ("omegaconf", "typing") or \
                        (module == "collections" and name == "defaultdict"):
                    return _stand_in(module, name)
                raise CheckpointError(
                    f"{path}: the checkpoint's pickle names {module}.{name}, which a state dict "
                    "does not need; refused without running it")

            def persistent_load(self, pid):
                if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
                    raise CheckpointError(f"{path}: an unexpected persistent id {pid!r:.80}")
                _, dtype, key, _, _ = pid
                if dtype not in [d for d in DTYPES.values() if d is not None]:
                    raise CheckpointError(f"{path}: a storage of type {dtype!r:.80}")
                return storage(dtype, key)

        try:
            with archive.open(pkl) as stream:
                pickled = stream.read(MAX_PICKLE_BYTES + 1)
            return Unpickler(io.BytesIO(pickled)).load()
        except CheckpointError:
            raise
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error) as e:
            raise CheckpointError(f"{path}: its pickle is damaged or truncated ({e})") from e
        except RecursionError as e:
            raise CheckpointError(f"{path}: its pickle nests too deeply") from e
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError,
                MemoryError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: its pickle is not a state dict "
                                  f"({type(e).__name__}: {e!s:.200})") from e


def plain(value, depth=0):
    """`value` with OmegaConf stand-ins replaced by the lists, dicts and scalars they hold."""
    if depth > 100:
        raise CheckpointError("the checkpoint's hyper-parameters nest too deeply")
    if isinstance(value, StandIn):
        state = value.__dict__.get("state", {})
        if isinstance(state, dict) and "_content" in state:
            return plain(state["_content"], depth + 1)
        if isinstance(state, dict) and "_val" in state:
            return plain(state["_val"], depth + 1)
        return state
    if isinstance(value, dict):
        return {k: plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value]
    return value


def float_state(state):
    """A state dict's arrays as float32."""
    return {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}
