#!/usr/bin/env bash
# The GPU check: one command that proves and measures deepq's CUDA path in a GPU machine's few minutes, and writes
# what it found to one folder (docs/guides/gpu.md says how to run it there).
#
#   bash benchmarks/gpu/run.sh                        # on the GPU machine: every part, about 8.5 minutes
#   bash benchmarks/gpu/run.sh --device cpu --tiny    # the dry run: every part, small, on CPU (tests/test_gpu_check.py)
#
# Options: --device D (cuda), --tiny, --out DIR ($OUT where it is set, else benchmarks/gpu/out), --budget SECONDS
# for the whole check (510; --tiny 300), --wheels DIR (benchmarks/gpu/wheels, filled by fetch_wheels.sh),
# --python PY ($PYTHON, else .venv/bin/python where there is one, else python3).
#
# The parts, in order, each under its own time limit (cut to what the budget has left) and each allowed to fail
# (its exit status is recorded and the check goes on):
#   wheels   install the carried wheels into a temporary folder (on Python 3.12; elsewhere pip checks them only)
#   env      the machine, the device, and which packages import (part_env.py)
#   tests    every mode on the device: pytest -m gpu tests/test_gpu.py, DEEPQ_TEST_DEVICE set to --device
#   updates  gradient updates per second by preset and update path, device against CPU (part_updates.py)
#   runs     whole-run env steps per second of cartpole, minatar-breakout-pqn, atari-pqn, device and CPU (part_runs.py)
#   profile  where the time goes: torch.profiler over cartpole and atari-pqn runs (part_profile.py)
#   pong     atari-pqn on Pong for the minutes left, its evaluations against wall-clock time (part_pong.py)
# then summary.py writes the folder's summary.md and results.json. The folder holds at most these 7 files:
# summary.md, results.json, run.log, pytest.log, profile.txt, pong-metrics.csv, pong-curve.png.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

DEVICE=cuda TINY=0 BUDGET="" WHEELS=benchmarks/gpu/wheels
OUT_DIR=${OUT:-benchmarks/gpu/out}
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
while [ $# -gt 0 ]; do
    case $1 in
        --device) DEVICE=$2; shift 2 ;;
        --tiny) TINY=1; shift ;;
        --out) OUT_DIR=$2; shift 2 ;;
        --budget) BUDGET=$2; shift 2 ;;
        --wheels) WHEELS=$2; shift 2 ;;
        --python) PY=$2; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
BUDGET=${BUDGET:-$([ $TINY = 1 ] && echo 300 || echo 510)}
TINY_FLAG=$([ $TINY = 1 ] && echo --tiny || echo "")
COMMAND="bash benchmarks/gpu/run.sh --device $DEVICE${TINY_FLAG:+ $TINY_FLAG} --budget $BUDGET"
START=$(date +%s)
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
rm -f "$OUT_DIR"/{summary.md,results.json,run.log,pytest.log,profile.txt,pong-metrics.csv,pong-curve.png}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/deepq-gpu-check.XXXXXX")
SITE=$WORK/site
trap 'rm -rf "$WORK"' EXIT
LOG=$OUT_DIR/run.log
RESULTS=$WORK/results.jsonl
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # deepq from this tree (the GPU machine has no install)

left() { echo $(( START + BUDGET - $(date +%s) )); }

# part NAME LIMIT COMMAND...: run COMMAND with its output in run.log (or $PART_LOG), stopped by SIGINT at
# min(LIMIT, what the budget has left less RESERVE seconds for the parts after it), and SIGKILL 10 s later;
# record how it ended.
RESERVE=0
part() {
    local name=$1 limit=$2 budget_left log=${PART_LOG:-$LOG}
    shift 2
    budget_left=$(( $(left) - RESERVE ))
    [ "$budget_left" -lt "$limit" ] && limit=$budget_left
    if [ "$limit" -lt 5 ]; then
        echo "{\"name\": \"$name\", \"skipped\": \"no time left in the budget\"}" >> "$WORK/parts.jsonl"
        echo "== $name: skipped, no time left" | tee -a "$LOG"
        return
    fi
    echo "== $name (limit ${limit}s, $(left)s of the budget left)" | tee -a "$LOG"
    local t0 rc
    t0=$(date +%s)
    timeout -s INT -k 10 "$limit" "$@" >> "$log" 2>&1
    rc=$?
    local seconds=$(( $(date +%s) - t0 )) timed_out=false
    { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && timed_out=true
    echo "{\"name\": \"$name\", \"rc\": $rc, \"seconds\": $seconds, \"limit\": $limit, \"timed_out\": $timed_out}" \
        >> "$WORK/parts.jsonl"
    echo "   $name: exit $rc after ${seconds}s" | tee -a "$LOG"
}

install_wheels() {
    local wheels=("$WHEELS"/*.whl)
    if [ ! -e "${wheels[0]}" ]; then
        echo "no wheels in $WHEELS (fill it with bash benchmarks/gpu/fetch_wheels.sh): using what is installed"
        return 0
    fi
    if "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
            "${wheels[@]}"
    else  # the dry run on another Python: pip checks that they install on 3.12; this Python's packages are used
        "$PY" -m pip install -q --dry-run --no-index --no-deps --target "$SITE" --python-version 3.12 \
            --implementation cp --only-binary=:all: --platform manylinux_2_28_x86_64 \
            --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --platform manylinux1_x86_64 "${wheels[@]}"
    fi
}

echo "deepq GPU check: $COMMAND; results in $OUT_DIR" | tee "$LOG"
if [ $TINY = 1 ]; then  # limits in seconds, and what each part runs
    L_TESTS=150 L_UPDATES=40 L_RUNS=80 L_PROFILE=40 UPDATE_S=0.2 RUN_S=1 PROFILE_S=0.5 XDIST=""
else
    L_TESTS=150 L_UPDATES=80 L_RUNS=120 L_PROFILE=40 UPDATE_S=1 RUN_S=8 PROFILE_S=6
    XDIST=$("$PY" -c 'import xdist' 2>/dev/null && echo "-n 4")  # 16 cores: 4 test processes share the GPU
fi
RESERVE=$([ $TINY = 1 ] && echo 30 || echo 120)  # kept for pong and the summary until pong starts
export -f install_wheels
export PY WHEELS SITE
part wheels 90 bash -c install_wheels
[ -d "$SITE" ] && export PYTHONPATH="$SITE:$PYTHONPATH"
part env 60 "$PY" benchmarks/gpu/part_env.py --device "$DEVICE" --results "$RESULTS"
# shellcheck disable=SC2086  # XDIST is empty or two words
PART_LOG=$OUT_DIR/pytest.log part tests "$L_TESTS" env DEEPQ_TEST_DEVICE="$DEVICE" "$PY" -m pytest tests/test_gpu.py \
    -m gpu -v -rfEs -p no:cacheprovider -o junit_family=xunit1 --junitxml="$WORK/junit.xml" $XDIST \
    --basetemp="$WORK/pytest"
part updates "$L_UPDATES" "$PY" benchmarks/gpu/part_updates.py --device "$DEVICE" --results "$RESULTS" \
    --seconds "$UPDATE_S" --budget $(( L_UPDATES - 10 )) $TINY_FLAG
part runs "$L_RUNS" "$PY" benchmarks/gpu/part_runs.py --device "$DEVICE" --results "$RESULTS" \
    --seconds "$RUN_S" --budget $(( L_RUNS - 5 )) $TINY_FLAG
for preset in cartpole atari-pqn; do
    part "profile-$preset" "$L_PROFILE" "$PY" benchmarks/gpu/part_profile.py --device "$DEVICE" --preset "$preset" \
        --results "$RESULTS" --text "$OUT_DIR/profile.txt" --seconds "$PROFILE_S" $TINY_FLAG
done
RESERVE=15  # the summary's
if [ $TINY = 1 ]; then
    PONG_MIN=0.05
else  # the training minutes: what is left, less start-up, the final evaluation and the plot (about 60 s)
    PONG_MIN=$("$PY" -c "print(max(0.5, ($(left) - $RESERVE - 60) / 60))")
fi
part pong $(( $(left) - RESERVE )) "$PY" benchmarks/gpu/part_pong.py --device "$DEVICE" --minutes "$PONG_MIN" \
    --results "$RESULTS" --out "$OUT_DIR" $TINY_FLAG
RESERVE=0
part summary 30 "$PY" benchmarks/gpu/summary.py --work "$WORK" --out "$OUT_DIR" --command "$COMMAND" \
    --seconds $(( $(date +%s) - START ))
echo "done in $(( $(date +%s) - START ))s; results in $OUT_DIR" | tee -a "$LOG"
[ -f "$OUT_DIR/summary.md" ] && cat "$OUT_DIR/summary.md"
# exit 0 when the check itself ran to its end: a part that failed is a result, recorded in summary.md
[ -f "$OUT_DIR/summary.md" ]
