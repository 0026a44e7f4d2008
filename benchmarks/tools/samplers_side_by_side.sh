#!/bin/bash
# Gradient evaluations per effective sample of several samplers at 64^3, one process per sampler side by side
# on one GPU. Only the counts are meaningful (the processes time-slice the card, so wall times are not the
# samplers' own); a wall-time measurement gets the card to itself. Never put a 64^3 run beside launch-bound
# small runs (the 32^3 slow seeds): a 64^3 MCLMC chunk took 10 s there on an H100,
# against 2.4 s alone on an H200 (benchmarks/README.md, 14:42).
#
#   SPECS="nuts:64 hmc:64 mams:256 nutsgibbs:32" DEADLINE=540 OUT=out/ bash benchmarks/tools/samplers_side_by_side.sh
#
# SPECS: sampler:warm-up-transitions pairs (short warm-ups: a NUTS transition at 64^3 is up to 1023 gradients of
# 8 chains, 5.1 ms each on an H100, measured on a shared card; at 8^3 on the CPU, 2026-12-07, NUTSwG after 32
# warm-up transitions accepted 1 % with divergences: give it more where the time allows); DEADLINE: wall seconds; every run stops sampling at DEADLINE - 20 and writes
# its JSON (benchmarks/bench_samplers.py --deadline) into $OUT with its log.
set -u
OUT=$(realpath -m "${OUT:-samplers_out}") D=${DEADLINE:-540}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
mkdir -p "$OUT"
for spec in ${SPECS:-nuts:64 hmc:64 mams:256 nutsgibbs:32}; do
  s=${spec%%:*} w=${spec##*:}
  timeout $((D + 15)) python3 benchmarks/bench_samplers.py --samplers "$s" --warmup "$w" --budget $((D - 100)) \
      --deadline $((D - 20)) --run-ess 1000 --out "$OUT" ${BENCH_ARGS:-} > "$OUT/bench64_$s.log" 2>&1 &
  sleep 1
done
wait
ls -la "$OUT"
