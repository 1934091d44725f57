#!/usr/bin/env bash
# Short GPU check (< 10 min): the attack, training and paper-grid benchmarks on a CUDA device, figures printed and
# kept in $OUT/gpu_check.log (OUT defaults to /tmp). TRAIN_HOURS: the training split's hours for the paper grid.
#
# On a CUDA machine with a clone of this repository:
#   ./install.sh && bash scripts/gpu_check.sh
# On a GPU node without internet access whose Python already has torch/torchaudio 2.11 but not ESPnet and ART:
# run scripts/gpu_wheels.sh on a machine that has PyPI, copy the clone with its .whl/ folder to the node, then
#   bash scripts/gpu_check.sh          (it installs .whl/ into /tmp/site for this run only)
# Without CUDA it says so and stops.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c "import espnet2, art" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      || { echo "gpu_check: installing the carried wheels failed"; exit 1; }
    export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "gpu_check: espnet/ART are not importable and no .whl/ was carried (run scripts/gpu_wheels.sh first)"
    exit 1
  fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device here; nothing to check (the CPU benchmarks are python -m hne_core.bench ...)"
  exit 0
fi
LOG=${OUT:-/tmp}/gpu_check.log
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import torch, espnet, art; print('torch', torch.__version__, 'espnet', espnet.__version__, 'art', art.__version__)"
  echo "== attack benchmark: default model on cuda, paper-size model on cuda"
  timeout 200 "$PY" -m hne_core.bench attack --device cuda --paper-device cuda --utts 16 --batch 16 --steps 5 \
    --paper-utts 16 --paper-steps 5 --threads 4
  echo "== attack benchmark rc=$?"
  echo "== training benchmark"
  timeout 120 "$PY" -m hne_core.bench train --device cuda --steps 5 --threads 4
  echo "== training benchmark rc=$?"
  echo "== paper grid: every stage of configs/paper.yaml on the paper-size model (give the real training hours)"
  timeout 300 "$PY" -m hne_core.bench paper --device cuda --train-hours "${TRAIN_HOURS:-500}" --steps 5 --threads 4
  echo "== paper grid rc=$?"
} 2>&1 | grep -v -e "Flash Attention" -e "legacy_rel" | tee "$LOG"
