#!/usr/bin/env bash
# Issue 18's GPU benchmark (benchmarks/gpu_main_job.py) in ONE call of the device tool.
#
# Prepare here, once (.device/ is ignored through .git/info/exclude; ~36 MiB, and the working
# tree that travels with it ~16 MiB, under the 64 MiB a call carries):
#   python benchmarks/gpu_main_job.py --make-npz .device/fer2013_train_half.npz \
#       --image-folder ../shared/data/fer2013
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .device/wheels \
#       keras==3.15.1 namex==0.1.0 optree==0.20.0 pydantic==2.14.4 pydantic-core==2.50.5 \
#       annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
# (the GPU image has JAX+CUDA, PyTorch, numpy, rich, typer, h5py, ml-dtypes, opencv, but no
# keras, pydantic or TensorFlow; emotionkit itself runs from the working tree, which travels).
#
# Then the device tool's `run`, with
#   command:   bash benchmarks/gpu_main_job.sh
#   carry:     [".device"]
#   timeout_s: 560        (the benchmark stops itself at 480 s, the issue's 8 minutes)
# Extra arguments go to gpu_main_job.py (recipe overrides, or e.g. `--only a`).
# Back in $OUT: gpu_main_job.json, console.txt, the three children's logs, versions.txt and
# nvidia_smi.csv (7 files; the tool returns at most 8).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/gpu_main_job}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .device/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site KERAS_BACKEND=jax PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv \
    >"$OUT/nvidia_smi.csv" 2>&1
python3 -c 'import jax, keras, pydantic, torch
print("jax", jax.__version__, jax.devices(), "keras", keras.__version__)
print("pydantic", pydantic.__version__, "torch", torch.__version__)' 2>&1 | tee "$OUT/versions.txt"
timeout 480 python3 benchmarks/gpu_main_job.py recipes/fer2013_resnet18.yaml \
    --npz .device/fer2013_train_half.npz --out "$OUT/gpu_main_job.json" --log-dir "$OUT" \
    --timeout-a 220 --timeout-b 100 --timeout-c 140 "$@" 2>&1 | tee "$OUT/console.txt"
