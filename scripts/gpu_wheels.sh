#!/usr/bin/env bash
# For a GPU node without internet access: download, on a machine that has PyPI and this repository's .venv, the
# wheels that scripts/gpu_check.sh needs beyond a Python that already carries torch 2.11 / torchaudio 2.11 /
# numpy / scipy / pandas / scikit-learn / sentencepiece (a common CUDA image): ESPnet, ART, jiwer and what those
# import. Versions: the venv's (requirements.txt).
#   scripts/gpu_wheels.sh [DEST]   (default .whl, added to .git/info/exclude; about 10 MB)
# Then copy the repository with DEST to the GPU node and run scripts/gpu_check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$DEST"
if [ "$DEST" = ".whl" ]; then
  mkdir -p .git/info && grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
fi
PLAT="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64"
ver() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
# Imported (not merely declared) by `python -m hne_core.bench attack|train`, absent from the device image.
PKGS="espnet adversarial-robustness-toolbox jiwer rapidfuzz typeguard humanfriendly hydra-core omegaconf
      librosa pooch platformdirs decorator soundfile cffi pycparser torch-complex omniio"
SPECS=""
for p in $PKGS; do SPECS="$SPECS $p==$(ver "$p")"; done
# shellcheck disable=SC2086
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $PLAT -d "$DEST" $SPECS
# antlr4-python3-runtime (hydra's parser) is published as a source archive only: build its pure-Python wheel here.
"$PY" -m pip wheel -q --no-deps -w "$DEST" "antlr4-python3-runtime==$(ver antlr4-python3-runtime)"
ls -la "$DEST"
du -sh "$DEST"
