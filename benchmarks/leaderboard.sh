#!/usr/bin/env bash
# Regenerate the leaderboard (benchmarks/results/leaderboard.{csv,json,md,png}): every track of the
# suite, every baseline at the track's budgets, the reference agents in benchmarks/models/ and the
# example user policy, and fold the best latencies into xnet_gym/benchmark/best_known.json.
# About 20-25 minutes on 2 cores; run it on an otherwise idle machine (anneal's budgets are wall
# time, and every row's s/instance is measured). Usage: bash benchmarks/leaderboard.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
xnet-gym benchmark --baselines \
    --policy benchmarks/models/refine-packed-greedy-bc10k/model.zip \
             benchmarks/models/refine-esft-greedy-bc10k/model.zip \
             benchmarks/models/constructive-paper-bc/model.zip \
             examples/benchmark_policy.py:unblock_bottlenecks \
    --out benchmarks/results --name leaderboard --update-best-known
