#!/usr/bin/env bash
# Regenerate the leaderboard (benchmarks/results/leaderboard.{csv,json,md,png}): every placement
# track of the suite, every baseline at the track's budgets, the three reference agents and the
# example user policy, and fold the best latencies into xnet_gym/benchmark/best_known.json; then
# the drift tracks (benchmarks/results/leaderboard-drift.*): online re-placement, its baselines,
# the lookahead teacher and the re-placement agent.
#
# Trained models are not kept in git: the reference agents are trained first, into
# runs/leaderboard-models/ (skipped where a model is already there), by the commands below
# (about 4, 11, 0.5 and 15 minutes on 2 cores). Then the benchmark runs for about 16 minutes. Run
# it on an otherwise idle machine: anneal's budgets are wall time, and every row's s/instance
# is measured. Usage: bash benchmarks/leaderboard.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
models=runs/leaderboard-models
train() {   # NAME, then xnet-gym train arguments
    local name=$1; shift
    [ -f "$models/$name/model.zip" ] || xnet-gym train --no-progress --out "$models/$name" "$@"
}
train refine-packed-greedy-bc10k --env xnet_gym/ExpertRefine-v0 --scenario deepseek-esft-packed --tokens 512 \
    --train-time-steps 8 --gain-observation --imitate greedy --imitation-steps 10000 --timesteps 0
train refine-esft-greedy-bc10k --env xnet_gym/ExpertRefine-v0 --scenario deepseek-esft --tokens 512 \
    --train-time-steps 8 --gain-observation --imitate greedy --imitation-steps 10000 --timesteps 0
train constructive-paper-bc --scenario paper --objective max --imitate analytic --timesteps 0
train replace-packed-greedy-bc16k --env xnet_gym/ExpertReplace-v0 --scenario deepseek-esft-packed-drift \
    --gain-observation --imitate greedy --imitation-steps 16000 --timesteps 0 --n-envs 4
xnet-gym benchmark --baselines \
    --track paper deepseek-esft deepseek-esft-packed packed-law packed-summary packed-630km esft-20x52-cap2 \
            clustered-48-top4 \
    --policy "$models/refine-packed-greedy-bc10k/model.zip" \
             "$models/refine-esft-greedy-bc10k/model.zip" \
             "$models/constructive-paper-bc/model.zip" \
             examples/benchmark_policy.py:unblock_bottlenecks \
    --out benchmarks/results --name leaderboard --update-best-known
xnet-gym benchmark --baselines --track replace-packed-cycle replace-esft-cycle \
    --policy lookahead "$models/replace-packed-greedy-bc16k/model.zip" \
    --out benchmarks/results --name leaderboard-drift
