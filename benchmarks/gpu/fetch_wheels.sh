#!/usr/bin/env bash
# Fill benchmarks/gpu/wheels/ (git-ignored) with the wheels the GPU check carries to the GPU machine, then print
# the size of everything that travels there (the working tree and the wheels; the limit is 64 MiB).
#
#   bash benchmarks/gpu/fetch_wheels.sh            # needs PyPI; run it here, on a machine with the network
#
# The GPU machine has Python 3.12 and a CUDA torch, numpy, matplotlib, tensorboard, rich, threadpoolctl, pytest,
# pytest-xdist, scipy, seaborn, absl-py and typing-extensions, but none of deepq's env packages and no network.
# So this fetches, for CPython 3.12 on manylinux x86-64, the versions pinned in this repo's venv:
#   gymnasium + farama-notifications   every env deepq makes
#   ale-py                             Atari (its wheel holds the ROMs); EnvPool needs it too, for the action names
#   envpool, slimmed to Atari          the official 53 MB wheel would leave no room (slim_envpool.py says how)
#   dm-env, optree                     what EnvPool's Python front end imports
#   MinAtar                            the minatar-breakout(-pqn) presets
#   open-spiel                         the self-play test (tic-tac-toe, legal-move masks)
# Not carried: pettingzoo (open_spiel covers the games), Box2D (LunarLander is not in the check), ray, optuna
# and rliable (distributed, tune and compare are not in the check), envpool's other engines and envpool-assets.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
WHEELS=${1:-benchmarks/gpu/wheels}
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
CARRIED=(gymnasium==1.4.0 Farama-Notifications==0.0.6 ale-py==0.12.1 MinAtar==1.0.15 open-spiel==2.0.2
         dm-env==1.6 optree==0.20.0)
ENVPOOL=envpool==1.2.5
# pip matches each manylinux N exactly, so every one a wheel of these may be tagged with is named
TARGET=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64)

rm -rf "$WHEELS"
mkdir -p "$WHEELS"
RAW=$(mktemp -d)
trap 'rm -rf "$RAW"' EXIT
for spec in "${CARRIED[@]}"; do
    "$PY" -m pip download -q "${TARGET[@]}" -d "$WHEELS" "$spec"
done
"$PY" -m pip download -q "${TARGET[@]}" -d "$RAW" "$ENVPOOL"
"$PY" benchmarks/gpu/slim_envpool.py "$RAW"/envpool-*.whl "$WHEELS"/ale_py-*.whl "$WHEELS"
ls -l "$WHEELS"
"$PY" benchmarks/gpu/carried_size.py --wheels "$WHEELS"
