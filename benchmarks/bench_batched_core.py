"""The batched core's figures, against the code before it, in one run.

Run: python benchmarks/bench_batched_core.py [--baseline 61fc5d8] [--rounds 2]

Every figure is measured in a fresh subprocess, alternately on the baseline revision (checked
out into a temporary git worktree) and on the working tree, `--rounds` times each, and each
keeps its best round: a burst of load elsewhere on the machine then costs both sides alike.

Figures (random actions where an env is stepped; resets are counted, as in training):
- `cartpole`: CartPole-v1 steps/s (the yardstick of the single-env ratio);
- `single-paper` / `single-esft`: ExpertPlacement-v0 steps/s through `gymnasium.make`
  (`paper`, 16 training time steps; `deepseek-esft`, 512 tokens, 8 time steps);
- `batched-paper` / `batched-esft`: the batched env at N = 1,024, steps/s;
- `refine-greedy`: ExpertRefine-v0 on `deepseek-esft-packed` (512 tokens, 8 time steps) with
  the gain observation, stepped by `greedy_action()`: steps/s;
- `refine-batched`: the same on the batched ExpertRefine-v0 at N = 256 (`greedy_actions()`),
  steps/s over all sub-envs (working tree only);
- `steepest-s`: steepest descent (the `steepest-descent` solver) on packed ESFT, seconds per
  instance over 32 instances, one at a time;
- `steepest-batched-s`: the same search on 256 instances in lockstep (`solve_many`), seconds
  per instance (working tree only: the baseline has no batched search).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r'''
import json, os, sys, time
import gymnasium as gym
import numpy as np
import xnet_gym
assert xnet_gym.__file__.startswith(os.getcwd()), xnet_gym.__file__      # the revision asked for
figure = sys.argv[1]
WINDOW_S = 2.0

def rate(step, n_per_call):
    step()                                             # compile, warm the caches
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < WINDOW_S:
        step()
        n += n_per_call
    return n / (time.perf_counter() - t0)

def single(env_id, **kw):
    env = gym.make(env_id, **kw)
    env.reset(seed=0)
    env.action_space.seed(0)
    def run():
        for _ in range(100):
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            if term or trunc:
                env.reset()
    return rate(run, 100)

def batched(n, **kw):
    venv = gym.make_vec("xnet_gym/ExpertPlacement-v0", num_envs=n, vectorization_mode="vector_entry_point", **kw)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    pool = [rng.integers(venv.single_action_space.n, size=n) for _ in range(16)]
    def run():
        for actions in pool:
            venv.step(actions)
    return rate(run, 16 * n)

PACKED = {"scenario": "deepseek-esft-packed", "tokens": 512, "train_time_steps": 8}

def packed_instances(n):
    env = gym.make("xnet_gym/ExpertRefine-v0", **PACKED)
    out = []
    for s in range(n):
        env.reset(seed=1000 + s)
        p = env.unwrapped.problem
        out.append((p.instance, int(p.batch.layers[p.first])))
    return out

if figure == "cartpole":
    value = single("CartPole-v1")
elif figure == "single-paper":
    value = single("xnet_gym/ExpertPlacement-v0", scenario="paper", train_time_steps=16)
elif figure == "single-esft":
    value = single("xnet_gym/ExpertPlacement-v0", scenario="deepseek-esft", tokens=512, train_time_steps=8)
elif figure == "batched-paper":
    value = batched(1024, scenario="paper", train_time_steps=16)
elif figure == "batched-esft":
    value = batched(1024, scenario="deepseek-esft", tokens=512, train_time_steps=8)
elif figure == "refine-greedy":
    env = gym.make("xnet_gym/ExpertRefine-v0", gain_observation=True, **PACKED)
    env.reset(seed=0)
    def run():
        for _ in range(10):
            _, _, term, trunc, _ = env.step(env.unwrapped.greedy_action())
            if term or trunc:
                env.reset()
    value = rate(run, 10)
elif figure == "refine-batched":
    venv = gym.make_vec("xnet_gym/ExpertRefine-v0", num_envs=256, vectorization_mode="vector_entry_point",
                        gain_observation=True, **PACKED)
    venv.reset(seed=0)
    u = venv.unwrapped
    def run():
        venv.step(u.greedy_actions())
    value = rate(run, 256)
elif figure in ("steepest-s", "steepest-batched-s"):
    from xnet_gym.baselines import SteepestDescent
    items = packed_instances(32 if figure == "steepest-s" else 256)
    SteepestDescent(layers=[items[0][1]]).solve(items[0][0])               # compile
    t0 = time.perf_counter()
    if figure == "steepest-s":
        for inst, layer in items:
            SteepestDescent(layers=[layer]).solve(inst)
    else:
        SteepestDescent().solve_many([i for i, _ in items], layers_each=[[layer] for _, layer in items])
    value = (time.perf_counter() - t0) / len(items)
print(json.dumps(value))
'''

FIGURES = ["cartpole", "single-paper", "single-esft", "batched-paper", "batched-esft", "refine-greedy",
           "refine-batched", "steepest-s", "steepest-batched-s"]
SECONDS = {"steepest-s", "steepest-batched-s"}        # lower is better


def measure(path: Path, figure: str) -> float | None:
    env = {**os.environ, "PYTHONPATH": str(path), "OMP_NUM_THREADS": "1"}
    # cwd = the revision: `python -c` puts the working directory first on sys.path.
    done = subprocess.run([sys.executable, "-c", PROBE, figure], env=env, cwd=str(path), capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        return None                                                      # the revision lacks it
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="61fc5d8", help="git revision to compare with (default: before the core)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--figures", nargs="*", default=FIGURES, choices=FIGURES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), args.baseline],
                       check=True)
        try:
            best: dict[tuple[str, str], float | None] = {}
            for _ in range(args.rounds):
                for figure in args.figures:
                    for side, path in (("baseline", old), ("now", ROOT)):
                        value = measure(path, figure)
                        key = (figure, side)
                        if value is not None:
                            prev = best.get(key)
                            better = prev is None or (value < prev if figure in SECONDS else value > prev)
                            best[key] = value if better else prev
                        else:
                            best.setdefault(key, None)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()
    print(f"baseline {args.baseline}, now {head} (+ working tree); best of {args.rounds} rounds")
    print(f"{'figure':<22}{'baseline':>14}{'now':>14}")
    for figure in args.figures:
        row = [best.get((figure, side)) for side in ("baseline", "now")]
        print(f"{figure:<22}" + "".join(f"{v:>14.4g}" if v is not None else f"{'-':>14}" for v in row))
    for side in ("baseline", "now"):
        cart = best.get(("cartpole", side))
        for figure in ("single-paper", "single-esft"):
            value = best.get((figure, side))
            if cart and value:
                print(f"{side}: {figure} costs {cart / value:.2f} CartPole steps")
        single, many = best.get(("single-esft", side)), best.get(("batched-esft", side))
        if single and many:
            print(f"{side}: batched-esft = {many / single:.1f} x single-esft")
    for side in ("baseline", "now"):
        single, many = best.get(("refine-greedy", side)), best.get(("refine-batched", "now"))
        if single and many:
            print(f"refine-batched (now) = {many / single:.1f} x refine-greedy ({side})")
        one, lock = best.get(("steepest-s", side)), best.get(("steepest-batched-s", "now"))
        if one and lock:
            print(f"steepest-batched-s (now) = {lock / one:.2f} x steepest-s ({side})")


if __name__ == "__main__":
    main()
