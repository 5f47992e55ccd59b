"""`xnet-gym train`, `xnet-gym evaluate` and `xnet-gym run` (the README's main job)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xnet_gym.cli import int_at_least

ENV_IDS = ("xnet_gym/ExpertPlacement-v0", "xnet_gym/ModelPlacement-v0")
RUN_POLICIES = ("analytic", "RandIntra-CG", "RandIntra", "RandPlace", "random")


_positive_int = int_at_least(1)
_nonneg_int = int_at_least(0)


def _env_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default=ENV_IDS[0], choices=ENV_IDS)
    p.add_argument("--scenario", default="paper", help="preset name or scenario TOML path (default: paper)")
    p.add_argument("--objective", choices=("max", "weighted"), help="default: the scenario's")
    p.add_argument("--route", choices=("forward", "return"), help="default: the scenario's")
    p.add_argument("--tokens", type=_positive_int, help="tokens per activation profile")
    p.add_argument("--seed", type=_nonneg_int, default=0)


def _env_kwargs(args, training: bool) -> dict:
    kw = {"scenario": args.scenario}
    for key in ("objective", "route", "tokens"):
        if getattr(args, key, None) is not None:
            kw[key] = getattr(args, key)
    if training and getattr(args, "train_time_steps", None) is not None:
        kw["train_time_steps"] = args.train_time_steps
    return kw


def cmd_train(args) -> int:
    from .train import train

    out = train(args.env, args.scenario, args.algo, args.timesteps, args.seed, args.out,
                env_kwargs={k: v for k, v in _env_kwargs(args, True).items() if k != "scenario"},
                resume=args.resume, progress_bar=not args.no_progress)
    cfg = json.loads((out / "config.json").read_text())
    print(f"saved {out / 'model.zip'}  ({cfg['total_timesteps']} timesteps, {cfg['wall_time_s']:.0f} s, "
          f"{cfg['wall_time_per_100k_steps_s']:.0f} s per 100k steps)")
    return 0


def _evaluate_and_report(policies, args, curve_csv=None, title="") -> list[dict]:
    from .evaluate import evaluate_player, format_results, make_player, write_csv, write_plot

    kwargs = _env_kwargs(args, False)
    rows = []
    for spec in policies:
        player = make_player(spec, seed=args.seed)
        rows.append(evaluate_player(player, args.env, kwargs, args.episodes, args.seed))
    if getattr(args, "csv", None):
        write_csv(rows, args.csv)
    if getattr(args, "plot", None):
        write_plot(rows, args.plot, curve_csv)
    if args.json:
        clean = [{k: v for k, v in r.items() if k != "ratios"} | {"env": args.env, "scenario": args.scenario}
                 for r in rows]
        print(json.dumps(clean[0] if len(clean) == 1 else {"results": clean}, indent=2))
    else:
        print(format_results(rows, title))
    return rows


def cmd_evaluate(args) -> int:
    curve = None
    for p in args.policy:
        if p.endswith(".zip"):
            cand = Path(p).parent / "training_curve.csv"
            curve = cand if cand.is_file() else curve
    title = (f"{args.env} on {args.scenario}: {args.episodes} held-out instances (seed {args.seed}), "
             f"all time steps")
    _evaluate_and_report(args.policy, args, curve, title)
    return 0


def cmd_run(args) -> int:
    from .train import train

    out = Path(args.out)
    print(f"[1/2] training MaskablePPO on {args.env}, scenario {args.scenario}, {args.timesteps} timesteps "
          f"-> {out}", flush=True)
    train(args.env, args.scenario, "maskable_ppo", args.timesteps, args.seed, out,
          env_kwargs={k: v for k, v in _env_kwargs(args, True).items() if k != "scenario"},
          progress_bar=not args.no_progress)
    cfg = json.loads((out / "config.json").read_text())
    print(f"      trained in {cfg['wall_time_s']:.0f} s", flush=True)
    print(f"[2/2] scoring on {args.episodes} held-out instances, all time steps", flush=True)
    args.csv = out / "comparison.csv"
    args.plot = out / "comparison.png" if not args.no_plot else None
    title = (f"{args.env} on {args.scenario}, objective {args.objective or 'scenario default'}: "
             f"{args.episodes} held-out instances; ratios are latency / analytic")
    _evaluate_and_report([str(out / "model.zip"), *RUN_POLICIES], args, out / "training_curve.csv", title)
    print(f"wrote {args.csv}" + (f" and {args.plot}" if args.plot else ""))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train an SB3 policy on a placement env")
    _env_args(p)
    p.add_argument("--algo", default="maskable_ppo", choices=("maskable_ppo", "ppo"))
    p.add_argument("--timesteps", type=_positive_int, default=300_000)
    p.add_argument("--train-time-steps", type=_positive_int, help="time steps per training episode (default: 16)")
    p.add_argument("--out", default="runs/train", help="run folder (model, checkpoints, TensorBoard, config)")
    p.add_argument("--resume", action="store_true", help="continue from the folder's model or last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score policies on held-out instances")
    _env_args(p)
    p.add_argument("--policy", nargs="+", default=["analytic"],
                   help="analytic | random | a baseline (randintra-cg, randintra, randplace, space-xnet, ...) "
                        "| PATH.zip (SB3 zips hold pickles: load only files you trust)")
    p.add_argument("--episodes", type=_positive_int, default=100)
    p.add_argument("--json", action="store_true")
    p.add_argument("--csv", help="write the results as CSV")
    p.add_argument("--plot", help="write a PNG: bars per policy (+ the training curve of a .zip's run)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("run", help="main job: train MaskablePPO, then compare with the paper's strategies")
    _env_args(p)
    p.add_argument("--timesteps", type=_positive_int, default=300_000)
    p.add_argument("--train-time-steps", type=_positive_int, help="time steps per training episode (default: 16)")
    p.add_argument("--episodes", type=_positive_int, default=100)
    p.add_argument("--out", default="runs/default")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_run)


if __name__ == "__main__":
    from xnet_gym.cli import main

    sys.exit(main())
