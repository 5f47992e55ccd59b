"""The `xnet-gym` command: scenarios, compare (and, with the rl extra, train/evaluate/run)."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import XnetError


def int_at_least(low: int):
    """An argparse type: an integer >= low, with a message naming the value."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} must be >= {low}")
        return value
    return parse


_positive_int = int_at_least(1)
_nonneg_int = int_at_least(0)


def cmd_scenarios(args) -> int:
    from .scenario import load_scenario, preset_names

    for name in preset_names():
        sc = load_scenario(name)
        print(f"{name:<22} {sc.description}")
    return 0


def _instance_from_args(args):
    from pathlib import Path

    from .activation import load_esft, load_trace_npz
    from .instance import build_instance

    inst = build_instance(args.scenario, time_steps=args.time_steps, objective=args.objective, route=args.route)
    if getattr(args, "trace", None):
        path = Path(args.trace)
        m = inst.model
        trace = load_esft(path, m.experts, m.top_k) if path.is_dir() else load_trace_npz(path, m.experts)
        inst = inst.with_trace(trace)
    if getattr(args, "tokens", None):
        if args.tokens > inst.trace.n_tokens:
            raise XnetError(f"--tokens = {args.tokens}: the trace has only {inst.trace.n_tokens} tokens")
        # Tokens are i.i.d. in synthetic traces and in file order in real ones: keep the first N.
        inst = inst.with_trace(inst.trace.window(0, args.tokens))
    return inst


def cmd_compare(args) -> int:
    import baselines

    from .compare import format_table, score_strategies

    inst = _instance_from_args(args)
    names = list(baselines.PAPER_STRATEGIES) + list(args.solvers or [])
    params = {"optimum": {"time_limit_s": args.time_limit}, "local-search": {"time_budget_s": args.time_limit}}
    solvers = {}
    for name in names:
        cls = baselines.get(name).__class__
        kw = params.get(cls.name, {})
        solvers[cls.name] = (lambda s, cls=cls: cls(seed=s)) if getattr(cls, "randomized", False) \
            else (lambda s, cls=cls, kw=kw: cls(**kw))
    rows = score_strategies(inst, solvers, random_seeds=args.random_seeds, seed=args.seed)
    if args.json:
        print(json.dumps({"scenario": inst.scenario.name, "objective": inst.objective, "route": inst.route,
                          "time_steps": len(inst.time_steps), "tokens": inst.trace.n_tokens, "methods": rows}, indent=2))
    else:
        title = (f"scenario {inst.scenario.name}: {len(inst.time_steps)} time steps, {inst.trace.n_tokens} tokens, "
                 f"objective {inst.objective}, route {inst.route}; random rows: mean of {args.random_seeds} seeds")
        print(format_table(rows, title))
    return 0


def _add_instance_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default="paper", help="preset name or path to a scenario TOML (default: paper)")
    p.add_argument("--time-steps", type=_positive_int, help="number of time steps (default: the scenario's)")
    p.add_argument("--objective", choices=("max", "weighted"), help="default: the scenario's")
    p.add_argument("--route", choices=("forward", "return"), help="default: the scenario's")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xnet-gym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("scenarios", help="list the preset scenarios")
    p.set_defaults(func=cmd_scenarios)
    p = sub.add_parser("compare", help="score the paper's strategies (and solvers) on a scenario")
    _add_instance_args(p)
    p.add_argument("--trace", help="activation trace: an .npz or an ESFT-format folder")
    p.add_argument("--tokens", type=_positive_int, help="use only the trace's first N tokens")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="first seed of the random strategies")
    p.add_argument("--random-seeds", type=_positive_int, default=5, help="seeds averaged per random row")
    p.add_argument("--solvers", nargs="*", default=[],
                   help="extra solvers: optimum, local-search, eplb, brute-force (tiny only)")
    p.add_argument("--time-limit", type=float, default=10.0,
                   help="optimum: MILP seconds per layer; local-search: total seconds (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_compare)
    try:
        from agents.cli import add_commands
    except ImportError:
        pass
    else:
        add_commands(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except XnetError as exc:
        print(f"xnet-gym: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
