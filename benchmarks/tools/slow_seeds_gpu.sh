#!/bin/bash
# The 32^3 slow validation (tests/test_inference_slow.py) for several seeds side by side on one GPU, each seed
# in its own run folder under $RUN_DIR, resumed when a checkpoint is there, so that a validation can be carried
# over several jobs (or from a GPU job to a CPU and back).
#
#   SEEDS="1 2 3" BUDGET=420 DEADLINE=520 RUN_DIR=runs/slow OUT=out/ bash benchmarks/tools/slow_seeds_gpu.sh
#
# BUDGET: warm-up + sampling seconds per seed in this job (the test's INFERENCE_SLOW_BUDGET_S); DEADLINE: wall
# seconds after which every seed is killed (its last checkpoint stays: the runner writes one per chunk).
# JAX_COMPILATION_CACHE_DIR, if set, is passed on. A cache from an earlier H100 job did not shorten a fresh
# seed's compilation measurably (2026-12-07 15:22: 34.5 + 109.5 s, against 148-150 s without one at 12:58).
# Into $OUT: logs.tgz (one log per seed, the results JSONs of this job) and, with PACK=1, the run folders as a
# tar split into 15 MB parts (for transfer channels that limit file sizes): `cat runs.tar.part* | tar -x`.
set -u
T0=$(date +%s)
RUN_DIR=$(realpath -m "${RUN_DIR:-.slowruns}") OUT=$(realpath -m "${OUT:-slow_out}")
export JAXPM_TEST_ON_GPU=1 XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
export INFERENCE_SLOW_RUN_DIR=$RUN_DIR INFERENCE_SLOW_CHAINS=${CHAINS:-4} INFERENCE_SLOW_BUDGET_S=${BUDGET:-420}
LOGS=$(mktemp -d)/logs
mkdir -p "$LOGS" "$OUT" "$RUN_DIR" && touch "$LOGS/.t0"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$LOGS/gpu.txt" 2>&1
for s in ${SEEDS:-1 2 3}; do
  INFERENCE_SLOW_SEEDS=$s timeout $(( ${DEADLINE:-540} - ($(date +%s) - T0) )) python3 -m pytest -m slow -q \
      -p no:cacheprovider -s -W ignore tests/test_inference_slow.py > "$LOGS/seed$s.log" 2>&1 &
  sleep 2   # the seeds' processes start apart (compilation cache writes)
done
wait
echo "elapsed $(( $(date +%s) - T0 )) s" >> "$LOGS/gpu.txt"
find benchmarks/results -name 'inference_slow_*_seeds*.json' -newer "$LOGS/.t0" -exec cp {} "$LOGS/" \;
tar -C "$(dirname "$LOGS")" -czf "$OUT/logs.tgz" logs
if [ "${PACK:-0}" = 1 ]; then
  mkdir -p "$OUT/p" && tar -C "$(dirname "$RUN_DIR")" -cf - "$(basename "$RUN_DIR")" | split -b 15m - "$OUT/p/runs.tar.part"
fi
tail -n 2 "$LOGS"/seed*.log
