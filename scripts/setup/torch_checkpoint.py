"""Read a PyTorch zip checkpoint with numpy alone (no torch).

Tensors are rebuilt from the archive's storages; OmegaConf containers that Lightning pickles
into hyper-parameters are read as stand-ins and turned into plain lists and dicts by `plain`.
"""

import builtins
import pickle
import zipfile

import numpy as np

DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64,
          "HalfStorage": np.float16, "IntStorage": np.int32}


class StateDict(dict):
    """A dict that takes the attributes (`_metadata`) pickle sets on a torch state dict."""


class StandIn:
    """An object of a class that is not importable here; keeps the state pickle gives it."""

    def __init__(self, *args, **kwargs):
        self.__dict__["args"] = args

    def __setstate__(self, state):
        self.__dict__["state"] = state


def load(path):
    """Return the object a torch zip checkpoint holds, tensors as numpy arrays."""
    archive = zipfile.ZipFile(path)
    (pkl,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    root = pkl[: -len("data.pkl")]

    def rebuild(storage, offset, size, stride, *_):
        itemsize = storage.dtype.itemsize
        return np.lib.stride_tricks.as_strided(
            storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)).copy()

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "torch._utils" and name == "_rebuild_tensor_v2":
                return rebuild
            if module == "torch" and name in DTYPES:
                return DTYPES[name]
            if module == "collections" and name == "OrderedDict":
                return StateDict
            if module in ("builtins", "__builtin__"):
                return int if name == "long" else getattr(builtins, name)
            if module.split(".")[0] in ("omegaconf", "typing", "collections"):
                return type(name, (StandIn,), {})
            raise pickle.UnpicklingError(f"unexpected {module}.{name} in {path}")

        def persistent_load(self, pid):
            _, dtype, key, _, _ = pid
            return np.frombuffer(archive.read(f"{root}data/{key}"), dtype=dtype)

    return Unpickler(archive.open(pkl)).load()


def plain(value):
    """`value` with OmegaConf stand-ins replaced by the lists, dicts and scalars they hold."""
    if isinstance(value, StandIn):
        state = value.__dict__.get("state", {})
        if isinstance(state, dict) and "_content" in state:
            return plain(state["_content"])
        if isinstance(state, dict) and "_val" in state:
            return plain(state["_val"])
        return state
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def float_state(state):
    """A state dict's arrays as float32."""
    return {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}
