#!/usr/bin/env bash
# Installs everything the workflow and its tests need, idempotently:
#   Debian tools (espeak-ng for the self-made corpus, ffmpeg for Common Voice MP3s, sox, openssl for the
#   rehearsal's stand-in HTTPS server, a C compiler for pesq (PyPI ships it as source only), SLURM + munge for the
#   cluster test, and Chromium, the headless browser that opens the listening page in tests/test_listen.py),
#   a Python 3.12 virtual environment in .venv with the pins of requirements.txt, and hne_core (editable).
# A second run with nothing changed takes a second.
set -euo pipefail
cd "$(dirname "$0")"

# slurmctld, slurmd, slurm-client and munge: the single-node SLURM cluster that tests/test_slurm.py starts
# (scripts/slurm/start.sh); no service is started here.
apt_packages=(espeak-ng ffmpeg sox openssl gcc libc6-dev chromium)
slurm_packages=(slurmctld slurmd slurm-client munge)
missing=()
for tool in espeak-ng ffmpeg sox openssl cc chromium sbatch /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/munged; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install.sh: installing Debian packages ${apt_packages[*]} ${slurm_packages[*]}" >&2
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then   # keep the packages' scripts from starting services
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null; $sudo chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_packages[@]}" >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${slurm_packages[@]}" >/dev/null
  if [ "$made_policy" = 1 ]; then $sudo rm -f /usr/sbin/policy-rc.d; fi
fi

find_python312() {
  local candidate
  for candidate in "${PYTHON:-}" python3.12 "$(command -v pyenv >/dev/null && echo "$(pyenv root)/versions/3.12.1/bin/python3.12")"; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "install.sh: Python 3.12 not found (set PYTHON=/path/to/python3.12)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  py=$(find_python312)
  "$py" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q 'pip<26.3'   # pip 26.3+ refuses espnet's dependency ci_sdr (direct URL)
  .venv/bin/python -m pip install -q -r requirements.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
echo "install.sh: ready (.venv: $(.venv/bin/python --version), snakemake $(.venv/bin/snakemake --version))" >&2
