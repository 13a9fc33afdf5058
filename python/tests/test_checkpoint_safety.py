"""Model files are untrusted input: the checkpoint reader and the config parser the RoFormer
converter uses (scripts/setup/) refuse what a state dict does not need, without running it, and
every damaged, truncated, oversized or nonsensical file is a clear error."""

import collections
import os
import pickle
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "setup"))
sys.path.insert(0, str(ROOT / "scripts" / "test"))
import roformer  # noqa: E402
import torch_checkpoint  # noqa: E402
from make_roformer_twin import save_checkpoint  # noqa: E402
from torch_checkpoint import CheckpointError  # noqa: E402


def write_checkpoint(path, tensors):
    """A checkpoint in torch's zip layout: `tensors` maps a name to (storage array, offset,
    size, stride), pickled as torch pickles them (`make_roformer_twin.save_checkpoint`)."""
    save_checkpoint({name: array for name, (array, *_) in tensors.items()}, str(path),
                    layouts={name: layout for name, (_, *layout) in tensors.items()})


def with_pickle(path, payload):
    """A checkpoint whose data.pkl is `payload`'s pickle."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("model/data.pkl", pickle.dumps(payload, protocol=2))


class Runs:
    """Pickles as a call of `function(*args)`: what a hostile checkpoint carries."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def test_a_state_dict_reads_back_exactly(tmp_path):
    weights = np.arange(12, dtype=np.float32)
    path = tmp_path / "good.ckpt"
    write_checkpoint(path, {"w": (weights, 0, (3, 4), (4, 1)), "t": (weights, 2, (2, 2), (1, 4))})
    state = torch_checkpoint.load(path)
    np.testing.assert_array_equal(state["w"], weights.reshape(3, 4))
    np.testing.assert_array_equal(state["t"], [[2, 6], [3, 7]])


@pytest.mark.parametrize("call", [
    lambda marker: Runs(os.system, f"touch {marker}"),
    lambda marker: Runs(subprocess.check_call, ["touch", str(marker)]),
    lambda marker: Runs(eval, f"open({str(marker)!r}, 'w')"),
    lambda marker: Runs(exec, f"open({str(marker)!r}, 'w')"),
    lambda marker: Runs(getattr, 1, "real"),
    lambda marker: Runs(__import__, "os"),
    lambda marker: Runs(open, str(marker), "w"),
    lambda marker: Runs(bytearray, 1 << 40),
])
def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tmp_path, call):
    marker = tmp_path / "ran"
    payload = call(marker)
    path = tmp_path / "hostile.ckpt"
    with_pickle(path, collections.OrderedDict(weights=payload))
    with pytest.raises(CheckpointError, match="refused without running it") as error:
        torch_checkpoint.load(path)
    name = f"{payload.function.__module__}.{payload.function.__name__}"
    assert name.split(".")[-1] in str(error.value)
    assert not marker.exists()


def test_the_converter_refuses_a_hostile_checkpoint_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "hostile.ckpt"
    with_pickle(path, {"state_dict": Runs(os.system, f"touch {marker}")})
    config = tmp_path / "hostile.yaml"
    config.write_text("model: {dim: 8, depth: 1, num_bands: 4}\ntraining: {instruments: [vocals]}\n")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "setup" / "roformer.py"),
                             str(path), str(config), str(tmp_path / "out.onnx")],
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "system" in result.stderr and "refused without running it" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "out.onnx").exists()


def test_every_truncation_of_a_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "good.ckpt"
    write_checkpoint(path, {f"w{i}": (np.ones(64), 0, (8, 8), (8, 1)) for i in range(4)})
    whole = path.read_bytes()
    cut = tmp_path / "cut.ckpt"
    for length in sorted({0, 1, 22, len(whole) // 4, len(whole) // 2, len(whole) * 9 // 10,
                          len(whole) - 1}):
        cut.write_bytes(whole[:length])
        with pytest.raises(CheckpointError):
            torch_checkpoint.load(cut)


@pytest.mark.parametrize("offset, size, stride, why", [
    (0, (1 << 40,), (1,), "too large"),
    (0, (1 << 20, 1 << 20), (0, 0), "too large"),
    (0, (4, 4), (4, 1), "reaches element"),
    (15, (2,), (1,), "reaches element"),
    (0, (2, 2), (100, 1), "reaches element"),
    (-1, (2,), (1,), "negative"),
    (0, (-2,), (1,), "negative"),
    (0, (2,), (-1,), "negative"),
    (0, (2, 2), (1,), "do not match"),
    (0, ("2",), (1,), "not an integer"),
    (0.5, (2,), (1,), "not an integer"),
    (0, 7, (1,), "do not match"),
])
def test_nonsense_shapes_are_refused_before_any_read(tmp_path, offset, size, stride, why):
    path = tmp_path / "shapes.ckpt"
    write_checkpoint(path, {"w": (np.zeros(15), offset, size, stride)})
    with pytest.raises(CheckpointError, match=why):
        torch_checkpoint.load(path)


def test_a_small_file_cannot_make_the_reader_allocate_what_it_chooses(tmp_path):
    # A memo index: the C unpickler sizes an array by it (512 MB for this one, 15 bytes of pickle).
    memo = tmp_path / "memo.ckpt"
    with zipfile.ZipFile(memo, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("model/data.pkl", b"\x80\x02}r" + struct.pack("<I", 1 << 26) + b".")
    # A stride of 0: one stored number read as 16 M of them.
    expanded = tmp_path / "expanded.ckpt"
    write_checkpoint(expanded, {"w": (np.zeros(15), 0, (1 << 24,), (0,))})
    tracemalloc.start()
    try:
        assert torch_checkpoint.load(memo) == {}
        with pytest.raises(CheckpointError, match="more than 4 times over"):
            torch_checkpoint.load(expanded)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak


def test_oversized_and_compressed_entries_are_refused_before_they_are_read(tmp_path):
    path = tmp_path / "model.ckpt"  # save_checkpoint names the archive's folder after the file
    write_checkpoint(path, {"w": (np.zeros(4), 0, (4,), (1,))})
    bomb = tmp_path / "bomb2.ckpt"
    with zipfile.ZipFile(path) as good, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("model/data.pkl", good.read("model/data.pkl"))
        out.writestr("model/data/0", b"\0" * (64 << 20))  # 64 MB of zeros in about 64 kB
    with pytest.raises(CheckpointError, match="expands"):
        torch_checkpoint.load(bomb)
    not_zip = tmp_path / "legacy.ckpt"
    not_zip.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(CheckpointError, match="not a PyTorch zip checkpoint"):
        torch_checkpoint.load(not_zip)


def test_configs_construct_no_objects_and_bombs_are_refused(tmp_path):
    def read(text):
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return roformer.read_config(path)

    assert read("model: {dim: 8, stereo: true, size: !!python/tuple [1, 2]}") == \
        {"model": {"dim": 8, "stereo": True, "size": (1, 2)}}
    marker = tmp_path / "ran"
    for hostile in [f"x: !!python/object/apply:os.system ['touch {marker}']",
                    "x: !!python/name:os.system", "x: !!python/module:os",
                    f"x: !!python/object/new:subprocess.Popen [['touch', '{marker}']]"]:
        with pytest.raises(roformer.Refused, match="may not construct objects"):
            read(hostile)
    assert not marker.exists()
    laughs = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in "bcdefgh":
        previous = laughs[-1].split(":")[0]
        laughs.append(f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 9) + "]")
    with pytest.raises(roformer.Refused, match="expand to more than"):
        read("\n".join(laughs))
    with pytest.raises(roformer.Refused, match="refers to itself"):
        read("&a [*a]")
    with pytest.raises(roformer.Refused, match="nests too deeply"):
        read("[" * 20000 + "]" * 20000)
    with pytest.raises(roformer.Refused, match="over 1 MB"):
        read("model: {}\n" + "#" * (2 << 20))
    with pytest.raises(roformer.Refused, match="not a YAML mapping"):
        read("- 1\n- 2\n")


def test_mdx23c_configs_and_checkpoints_that_cannot_be_reproduced_are_refused_by_field():
    import mdx23c
    from make_roformer_twin import random_mdx23c_state, small_mdx23c

    def spec(edit=None, state_edit=None):
        config = small_mdx23c()
        state = random_mdx23c_state(config, 3)
        if edit:
            edit(config)
        if state_edit:
            state_edit(state)
        return mdx23c.Spec(config, state, roformer.SHORT_SEGMENT, roformer.SHORT_SECONDS)

    assert spec().stems == 2
    for edit, field in [
        (lambda c: c["model"].update(act="swish"), "model.act"),
        (lambda c: c["model"].update(norm="GroupNormX"), "model.norm"),
        (lambda c: c["audio"].update(num_channels=1), "audio.num_channels"),
        (lambda c: c["audio"].update(sample_rate=48000), "audio.sample_rate"),
        (lambda c: c["audio"].update(dim_f=500), "audio.dim_f"),
        (lambda c: c["inference"].update(dim_t=66), "inference.dim_t"),
        (lambda c: c["model"].pop("growth"), "growth"),
        (lambda c: c["model"].update(scale=2), "model.scale"),
    ]:
        with pytest.raises(roformer.Refused, match=field):
            spec(edit)
    # The checkpoint must hold the config's network: a missing or reshaped tensor is named.
    with pytest.raises(roformer.Refused, match="lacks final_conv.2.weight"):
        spec(state_edit=lambda s: s.pop("final_conv.2.weight"))
    with pytest.raises(roformer.Refused, match="first_conv.weight is"):
        spec(state_edit=lambda s: s.update({"first_conv.weight": np.zeros((8, 4, 1, 1))}))
    # A norm the reference does not know means no norm there, as in the reference.
    config = small_mdx23c()
    config["model"]["norm"] = "LayerNorm"
    state = random_mdx23c_state(config, 3)
    assert not any(".tfc1.0." in name for name in state)
    assert mdx23c.Spec(config, state, roformer.SHORT_SEGMENT, roformer.SHORT_SECONDS).norm is None
