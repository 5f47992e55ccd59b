"""The `xnet-gym` command: scenarios, compare, show, and (with the rl extra) train, evaluate, run.

This module is a composition root: with `benchmark/policies.py` it alone of the core imports
`xnet_gym.baselines` and `xnet_gym.agents` (lazily, so
the core install works without the `rl` extra), and nothing imports it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from .errors import ScenarioError, XnetError, field_error
from .scenario import OBJECTIVES, ROUTES

ENV_IDS = ("xnet_gym/ExpertPlacement-v0", "xnet_gym/ModelPlacement-v0", "xnet_gym/ExpertRefine-v0")
# ExpertReplace-v0 trains like the others; its policies are scored by `xnet-gym replace`.
TRAIN_ENV_IDS = (*ENV_IDS, "xnet_gym/ExpertReplace-v0")
RUN_POLICIES = ("analytic", "RandIntra-CG", "RandIntra", "RandPlace", "random")
RL_MODULES = ("stable_baselines3", "sb3_contrib", "torch")


def int_at_least(low: int, high: int | None = None):
    """An argparse type: an integer >= low (and <= high), with a message naming the value."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} must be >= {low}" + (f" and <= {high}" if high else ""))
        return value
    return parse


# Seeds reach numpy's legacy seeding through SB3 (np.random.seed), which takes 0..2**32 - 1.
MAX_SEED = 2**32 - 1
_positive_int = int_at_least(1)
_nonneg_int = int_at_least(0)
_seed = int_at_least(0, MAX_SEED)


def float_above(low: float, inclusive: bool = False):
    """An argparse type: a finite number > low (>= low if inclusive), naming the value."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        ok = (value >= low if inclusive else value > low) and value != float("inf")
        if not ok:
            raise argparse.ArgumentTypeError(f"{value} must be a finite number {'>=' if inclusive else '>'} {low:g}")
        return value
    return parse


_positive_float = float_above(0.0)
_nonneg_float = float_above(0.0, inclusive=True)


def check_output(path, field: str, kind: str = "file") -> Path:
    """An output path of a command, checked before any work starts (xnet_gym.atomic)."""
    from .atomic import output_path_problem

    problem = output_path_problem(path, kind)
    if problem is not None:
        raise field_error(XnetError, field, str(path), problem)
    return Path(path)


def _require_rl(command: str) -> None:
    missing = [m for m in RL_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise XnetError(f"`xnet-gym {command}` needs the rl extra ({', '.join(missing)} not installed): "
                        f"pip install 'xnet-gym[rl]' torch==2.13.0")


# ---------------------------------------------------------------------------- core commands
def cmd_scenarios(args) -> int:
    from .scenario import load_scenario, preset_names

    for name in preset_names():
        sc = load_scenario(name)
        print(f"{name:<22} {sc.description}")
    return 0


def _instance_from_args(args):
    from .activation import load_esft, load_trace_npz
    from .instance import build_instance

    inst = build_instance(args.scenario, time_steps=args.time_steps, objective=args.objective, route=args.route)
    if getattr(args, "trace", None):
        path = Path(args.trace)
        m = inst.model
        trace = load_esft(path, m.experts, m.top_k) if path.is_dir() else load_trace_npz(path, m.experts)
        inst = inst.with_trace(trace, field="--trace")
    if getattr(args, "tokens", None):
        if args.tokens > inst.trace.n_tokens:
            raise XnetError(f"--tokens = {args.tokens}: the trace has only {inst.trace.n_tokens} tokens")
        # Tokens are i.i.d. in synthetic traces and in file order in real ones: keep the first N.
        inst = inst.with_trace(inst.trace.window(0, args.tokens))
    return inst


def _solver_factories(names, time_limit: float) -> dict:
    """{solver name: factory(seed) -> solver} with `--time-limit` as each one's budget."""
    from . import baselines

    factories = {}
    for name in names:
        cls = type(baselines.get(name))
        kw = {}
        if getattr(cls, "budget_parameter", None):
            kw[cls.budget_parameter] = time_limit
        if getattr(cls, "randomized", False):
            factories[cls.name] = lambda s, cls=cls, kw=kw: cls(seed=s, **kw)
        else:
            factories[cls.name] = lambda s, cls=cls, kw=kw: cls(**kw)
    return factories


def _compare_result(args, inst, keep_placements: bool = False) -> dict:
    from . import baselines
    from .compare import score_strategies

    factories = _solver_factories(list(baselines.paper_strategies()) + list(args.solvers or []), args.time_limit)
    return score_strategies(inst, factories, random_seeds=args.random_seeds, seed=args.seed,
                            keep_placements=keep_placements)


def cmd_compare(args) -> int:
    from .compare import format_table

    inst = _instance_from_args(args)
    result = _compare_result(args, inst)
    if args.json:
        print(json.dumps({"scenario": inst.scenario.name, "objective": inst.objective, "route": inst.route,
                          "time_steps": len(inst.time_steps), "tokens": inst.trace.n_tokens, **result}, indent=2))
    else:
        title = (f"scenario {inst.scenario.name}: {len(inst.time_steps)} time steps, {inst.trace.n_tokens} tokens, "
                 f"objective {inst.objective}, route {inst.route}; random rows: mean of {args.random_seeds} seeds")
        print(format_table(result, title))
    return 0


# ----------------------------------------------------------------------------- pictures
def cmd_show_constellation(args) -> int:
    from .instance import build_instance
    from .show import canvas
    from .show.constellation_map import constellation_frames, draw_constellation

    canvas.require_matplotlib()
    out = canvas.check_image_path(args.out)
    inst = build_instance(args.scenario, time_steps=args.time_steps)
    n = inst.constellation.n_time_steps
    if not 0 <= args.time_step < n:
        raise XnetError(f"--time-step = {args.time_step}: the scenario has time steps 0..{n - 1}")
    if out.suffix.lower() == ".gif":
        canvas.save_gif(constellation_frames(inst, args.frames), out, fps=args.fps)
    else:
        canvas.save_png(draw_constellation(inst, args.time_step), out)
    print(f"wrote {out}")
    return 0


def _placement_of(policy: str, inst, layer: int, seed: int):
    """A full placement from a policy name: analytic, random, a solver, or an SB3 model zip."""
    from . import baselines
    from .analytic import analytic_placement

    if policy == "analytic":
        return analytic_placement(inst)
    if policy.endswith(".zip"):
        _require_rl("show placement --policy PATH.zip")
        from .agents.players import play_on_instance
        return play_on_instance(policy, inst, layer)
    # Search only the layer that is drawn.
    return baselines.for_layer("RandIntra-CG" if policy == "random" else policy, layer, seed).solve(inst)


def cmd_show_placement(args) -> int:
    from .errors import ScenarioError, check_int
    from .instance import build_instance
    from .show import canvas
    from .show.subnet_map import draw_placements

    canvas.require_matplotlib()
    out = canvas.check_image_path(args.out, (".png",))
    inst = build_instance(args.scenario, time_steps=args.time_steps)
    layer = check_int(ScenarioError, "--layer", args.layer, 0, inst.n_layers - 1)
    placements = {args.policy: _placement_of(args.policy, inst, layer, args.seed)}
    if args.against:
        placements[args.against] = _placement_of(args.against, inst, layer, args.seed)
    canvas.save_png(draw_placements(inst, layer, placements), out)
    print(f"wrote {out}")
    return 0


def cmd_show_breakdown(args) -> int:
    from .latency import token_latencies_s
    from .show import canvas
    from .show.breakdown import draw_breakdown

    canvas.require_matplotlib()
    out = canvas.check_image_path(args.out, (".png",))
    inst = _instance_from_args(args)
    result = _compare_result(args, inst, keep_placements=True)
    tokens = {name: token_latencies_s(inst, p) for name, p in result.pop("placements").items()}
    canvas.save_png(draw_breakdown(result, tokens), out)
    print(f"wrote {out}")
    return 0


# ---------------------------------------------------------------------- rl-extra commands
def _env_kwargs(args, training: bool) -> dict:
    """The episode settings given on the command line (`EpisodeConfig`, checked once), as
    env keywords; held-out evaluation always uses every time step."""
    from .envs.episode import EpisodeConfig

    settings = {k: getattr(args, k) for k in EpisodeConfig.names() if getattr(args, k, None) is not None}
    if not training:
        settings.pop("train_time_steps", None)
    kw = EpisodeConfig(**settings).given()
    from .envs.capabilities import capabilities
    caps = capabilities(args.env)
    given = {k: v for k, v in kw.items() if k != "scenario"}
    if given and not caps.episode_settings:
        name, value = next(iter(given.items()))
        raise field_error(ScenarioError, f"--{name.replace('_', '-')}", value,
                          f"is an episode setting of the placement envs; {args.env} takes its windows from the "
                          "scenario's [workload] table")
    if getattr(args, "gain_observation", False):
        if not caps.gain_observation:
            raise field_error(ScenarioError, "--gain-observation", True,
                              f"is an option of ExpertRefine-v0 and ExpertReplace-v0, not of {args.env}")
        kw["gain_observation"] = True
    return kw


def _hyperparameters(args) -> dict:
    """The training hyperparameters set on the command line (the rest keep their defaults)."""
    given = {"encoder": args.encoder, "ent_coef": args.ent_coef, "learning_rate": args.learning_rate,
             "vec": getattr(args, "vec", None), "n_envs": getattr(args, "n_envs", None)}
    return {k: v for k, v in given.items() if v is not None}


def cmd_train(args) -> int:
    _require_rl("train")
    from .agents.train import train

    check_output(args.out, "--out", "folder")

    out = train(args.env, args.scenario, args.algo, args.timesteps, args.seed, args.out,
                env_kwargs={k: v for k, v in _env_kwargs(args, True).items() if k != "scenario"},
                resume=args.resume, progress_bar=not args.no_progress, imitate=args.imitate,
                imitation_steps=args.imitation_steps,
                hyperparameters=_hyperparameters(args))
    cfg = json.loads((out / "config.json").read_text())
    if cfg.get("interrupted"):
        print(f"interrupted at {cfg['total_timesteps']} timesteps: saved {out / 'model.zip'}, config.json and "
              f"training_curve.csv (continue with --resume)")
        return 130
    print(f"saved {out / 'model.zip'}  ({cfg['total_timesteps']} timesteps, {cfg['wall_time_s']:.0f} s, "
          f"{cfg['wall_time_per_100k_steps_s']:.0f} s per 100k steps)")
    return 0


def _check_evaluate_outputs(args) -> None:
    """Every output of an evaluation, checked before its (long) work: results are never lost
    to a bad path at the end."""
    if getattr(args, "csv", None):
        check_output(args.csv, "--csv")
    if getattr(args, "plot", None):
        from .show import canvas
        canvas.check_image_path(args.plot, (".png",), field="--plot")
    if getattr(args, "budget", None) is not None and not getattr(args, "best_known", None):
        raise field_error(XnetError, "--budget", args.budget, "is the --best-known solver's budget: add "
                          "--best-known SOLVER (e.g. anneal), or drop --budget")


def _evaluate_and_report(policies, args, curve_csv=None, title="") -> list[dict]:
    from .agents.evaluate import (
        best_known_latencies,
        evaluate_player,
        format_results,
        make_player,
        write_csv,
        write_plot,
    )

    kwargs = _env_kwargs(args, False)
    best, extra = None, []
    if getattr(args, "best_known", None):
        best, solve_s = best_known_latencies(args.env, kwargs, args.episodes, args.seed, args.best_known,
                                             args.budget)
        title += f"; best known: {args.best_known} ({args.budget or 'default'} s budget, {solve_s:.2f} s/instance)"
        if args.best_known not in policies:
            extra = [args.best_known]
    budget = getattr(args, "budget", None)
    zips = [p for p in policies if p.endswith(".zip")]

    def name(spec):          # several models side by side: each by its run folder
        return f"learned:{Path(spec).parent.name or Path(spec).stem}" if len(zips) > 1 and spec in zips else None

    rows = [evaluate_player(make_player(spec, seed=args.seed, name=name(spec), budget_s=budget), args.env, kwargs,
                            args.episodes, args.seed, best) for spec in [*policies, *extra]]
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
    _require_rl("evaluate")
    curve = None
    for p in args.policy:
        if p.endswith(".zip"):
            cand = Path(p).parent / "training_curve.csv"
            curve = cand if cand.is_file() else curve
    title = (f"{args.env} on {args.scenario}: {args.episodes} held-out instances (seed {args.seed}), "
             f"all time steps")
    _check_evaluate_outputs(args)
    _evaluate_and_report(args.policy, args, curve, title)
    return 0


def cmd_run(args) -> int:
    _require_rl("run")
    from .agents.train import train

    out = check_output(args.out, "--out", "folder")
    if not args.no_plot:
        from .show import canvas
        canvas.check_image_path(out / "comparison.png", (".png",))
    check_output(out / "comparison.csv", "--out")
    print(f"[1/2] training MaskablePPO on {args.env}, scenario {args.scenario}, {args.timesteps} timesteps "
          f"-> {out}", flush=True)
    train(args.env, args.scenario, "maskable_ppo", args.timesteps, args.seed, out,
          env_kwargs={k: v for k, v in _env_kwargs(args, True).items() if k != "scenario"},
          progress_bar=not args.no_progress)
    cfg = json.loads((out / "config.json").read_text())
    if cfg.get("interrupted"):
        print(f"interrupted at {cfg['total_timesteps']} timesteps: saved {out / 'model.zip'}, config.json and "
              f"training_curve.csv")
        return 130
    print(f"      trained in {cfg['wall_time_s']:.0f} s", flush=True)
    print(f"[2/2] scoring on {args.episodes} held-out instances, all time steps", flush=True)
    args.csv = out / "comparison.csv"
    args.plot = out / "comparison.png" if not args.no_plot else None
    title = (f"{args.env} on {args.scenario}, objective {args.objective or 'scenario default'}: "
             f"{args.episodes} held-out instances; ratios are latency / analytic")
    # Refinement keeps the episode's gateways: the paper's gateway-moving baselines cannot play it.
    from .envs.capabilities import capabilities
    policies = ("analytic", "local-search", "random") if capabilities(args.env).refinement else RUN_POLICIES
    _evaluate_and_report([str(out / "model.zip"), *policies], args, out / "training_curve.csv", title)
    print(f"wrote {args.csv}" + (f" and {args.plot}" if args.plot else ""))
    return 0


def cmd_sweep(args) -> int:
    _require_rl("sweep")
    from .agents.sweep import (
        SweepInterrupted,
        check_address,
        check_sweep_out,
        grid,
        require_ray,
        summarise,
        summary_markdown,
        sweep,
    )

    require_ray()                        # says how to install Ray before any work
    check_sweep_out(args.out)
    check_address(args.address)
    trials = grid(args.scenarios, args.objectives, args.seeds, args.algos, args.encoders, args.timesteps,
                  imitate=args.imitate, imitation_steps=args.imitation_steps, vec=args.vec, episodes=args.episodes)
    where = args.address or "an embedded local Ray"
    print(f"sweep: {len(trials)} trials on {where} -> {args.out}", flush=True)
    try:
        rows = sweep(trials, args.out, address=args.address, resume=args.resume, cpus_per_trial=args.cpus_per_trial,
                     max_concurrent=args.max_concurrent, verbose=args.verbose)
    except (KeyboardInterrupt, SweepInterrupted) as exc:
        detail = f" ({exc})" if str(exc) else ""
        print(f"interrupted{detail}: finished trials are kept in {args.out} (summary marked partial); continue "
              "with the same command and --resume", file=sys.stderr)
        return 130
    print(summary_markdown(summarise(rows)))
    out = Path(args.out)
    print(f"wrote {out / 'trials.csv'}, {out / 'summary.csv'}, {out / 'summary.md'}"
          + (f" and {out / 'summary.png'}" if (out / "summary.png").is_file() else ""))
    return 0


def cmd_benchmark(args) -> int:
    from .benchmark import load_suite
    from .benchmark.report import check_out_dir, provenance, write_outputs
    from .benchmark.runner import load_best_known, run_track, update_best_known

    suite = load_suite(args.suite)
    tracks = suite.select(args.track, quick=args.quick)
    if not args.policy and not args.baselines:
        raise field_error(XnetError, "--policy", None, "name at least one policy, or add --baselines")
    if args.update_best_known and args.instances is not None:
        raise field_error(XnetError, "--update-best-known", True, "needs every instance of a track: drop --instances")
    out = check_out_dir(args.out)
    if not args.no_plot:
        from .show import canvas
        canvas.require_matplotlib()
    from .agents.replace_eval import parse_replace_policy
    from .benchmark.policies import is_replace_spec, parse_policy
    # Bad specs fail before any work: re-placement specs run on the drift tracks, the rest elsewhere.
    policies = {spec: parse_policy(spec) for spec in args.policy if not is_replace_spec(spec)}
    for spec in args.policy:
        if is_replace_spec(spec):
            parse_replace_policy(spec)
    stored = load_best_known()
    command = "xnet-gym " + " ".join(args.argv_echo)
    results = []
    for track in tracks:
        results.append(run_track(track, args.policy, baselines=args.baselines, limit=args.instances, stored=stored,
                                 log=lambda line: print(line, flush=True), policies=policies))
    paths = write_outputs(results, out, args.name, provenance(suite.version, command), plot=not args.no_plot)
    if args.update_best_known:
        update_best_known(results)
        print("updated the stored best known latencies", flush=True)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


REPLACE_BASELINES = ("static", "static:fit=pooled", "periodic-resolve", "periodic-resolve:history_tokens=1024",
                     "periodic-resolve:history_tokens=1024,polish=true", "periodic-resolve:history_tokens=10000000",
                     "oracle")


def cmd_replace(args) -> int:
    """Re-placement policies on the same held-out episodes of ExpertReplace-v0."""
    from .agents.replace_eval import evaluate_replace

    policies = [*(REPLACE_BASELINES if args.baselines else ()), *args.policy]
    if not policies:
        raise field_error(XnetError, "--policy", None, "name at least one policy, or add --baselines")
    if any(p.endswith(".zip") for p in policies):
        _require_rl("replace")
    if args.csv:
        check_output(args.csv, "--csv")
    seeds = range(args.seed, args.seed + args.episodes)
    print(f"{args.scenario}: {args.episodes} held-out episodes (seeds {args.seed}..{args.seed + args.episodes - 1})",
          flush=True)
    rows = evaluate_replace(args.scenario, policies, seeds, log=lambda line: print(line, flush=True))
    if args.csv:
        import csv
        import io

        from .atomic import atomic_write_text
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=[k for k in rows[0] if k != "episode_ratios"] + ["episode_ratios"])
        w.writeheader()
        w.writerows({**r, "episode_ratios": " ".join(f"{x:.6f}" for x in r["episode_ratios"])} for r in rows)
        atomic_write_text(Path(args.csv), buf.getvalue())
        print(f"wrote {args.csv}")
    return 0


# ---------------------------------------------------------------------------------- parser
def _add_instance_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default="paper", help="preset name or path to a scenario TOML (default: paper)")
    p.add_argument("--time-steps", "--slots", dest="time_steps", type=_positive_int,
                   help="number of time steps (default: the scenario's; --slots is the old name)")
    p.add_argument("--objective", choices=OBJECTIVES, help="default: the scenario's")
    p.add_argument("--route", choices=ROUTES, help="default: the scenario's")


def _add_compare_args(p: argparse.ArgumentParser) -> None:
    _add_instance_args(p)
    p.add_argument("--trace", help="activation trace: an .npz or an ESFT-format folder")
    p.add_argument("--tokens", type=_positive_int, help="use only the trace's first N tokens")
    p.add_argument("--seed", type=_seed, default=0, help="first seed of the random strategies")
    p.add_argument("--random-seeds", type=_positive_int, default=5, help="seeds averaged per random row")
    p.add_argument("--solvers", nargs="*", default=[],
                   help="extra solvers: optimum, local-search, anneal (the best-known search), eplb, "
                        "brute-force (tiny only)")
    p.add_argument("--time-limit", type=_positive_float, default=10.0,
                   help="time budget in seconds of every solver that takes one (optimum: MILP seconds per "
                        "layer; local-search and anneal: total seconds; default 10)")


def _add_torch_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--torch-threads", type=_nonneg_int,
                   help="torch's intra-op threads (default 1, or $XNET_GYM_TORCH_THREADS; 0: torch's own default, one "
                        "per core, which is several times slower when other work shares the cores)")


def _apply_torch_threads(args) -> None:
    if getattr(args, "torch_threads", None) is not None:
        import os

        from .agents.threads import VARIABLE  # torch-free: only the variable's name
        os.environ[VARIABLE] = str(args.torch_threads)     # read by every model load and training run


def _add_env_args(p: argparse.ArgumentParser, env_ids: tuple[str, ...] = ENV_IDS) -> None:
    _add_torch_threads(p)
    p.add_argument("--env", default=env_ids[0], choices=env_ids)
    p.add_argument("--scenario", default="paper", help="preset name or scenario TOML path (default: paper)")
    p.add_argument("--objective", choices=OBJECTIVES, help="default: the scenario's")
    p.add_argument("--route", choices=ROUTES, help="default: the scenario's")
    p.add_argument("--tokens", type=_positive_int, help="tokens per activation profile")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--gain-observation", action="store_true",
                   help="ExpertRefine-v0, ExpertReplace-v0: observe every action's exact gain (the whole "
                        "neighbourhood scored each step; a model trained with it is evaluated with it)")


def _add_train_time_steps(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-time-steps", "--train-slots", dest="train_time_steps", type=_positive_int,
                   help="time steps per training episode (default: 16; --train-slots is the old name)")


def build_parser() -> argparse.ArgumentParser:
    from .agents.settings import ALGOS, ENCODERS, IMITATION_EXPERTS, VEC_KINDS

    parser = argparse.ArgumentParser(prog="xnet-gym", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("scenarios", help="list the preset scenarios")
    p.set_defaults(func=cmd_scenarios)

    p = sub.add_parser("compare", help="score the paper's strategies (and solvers) on a scenario")
    _add_compare_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_compare)

    show = sub.add_parser("show", help="pictures: the constellation, a placement, where the latency goes "
                                       "(needs matplotlib)").add_subparsers(dest="picture", required=True)
    p = show.add_parser("constellation", help="every satellite, coloured by layer, with ISLs, gateways and "
                                              "the ring path; .gif animates the time steps")
    p.add_argument("--scenario", default="paper", help="preset name or scenario TOML path (default: paper)")
    p.add_argument("--time-steps", dest="time_steps", type=_positive_int, help="default: the scenario's")
    p.add_argument("--time-step", type=_nonneg_int, default=0, help="the time step drawn (PNG)")
    p.add_argument("--frames", type=_positive_int, help="GIF: at most this many time steps (default all)")
    p.add_argument("--fps", type=_positive_float, default=4.0, help="GIF frames per second")
    p.add_argument("--out", default="constellation.png", help="a .png or .gif file")
    p.set_defaults(func=cmd_show_constellation)
    p = show.add_parser("placement", help="one layer's subnet with a placement (or two, side by side)")
    p.add_argument("--scenario", default="paper", help="preset name or scenario TOML path (default: paper)")
    p.add_argument("--time-steps", dest="time_steps", type=_positive_int, help="default: the scenario's")
    p.add_argument("--layer", type=_nonneg_int, default=0)
    p.add_argument("--policy", default="analytic",
                   help="analytic | random | a solver (anneal, local-search, optimum, ...) | PATH.zip")
    p.add_argument("--against", help="a second policy drawn beside the first, moved experts marked")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", default="placement.png", help="a .png file")
    p.set_defaults(func=cmd_show_placement)
    p = show.add_parser("breakdown", help="propagation / compute / outage per method, and per-token CDFs")
    _add_compare_args(p)
    p.add_argument("--out", default="breakdown.png", help="a .png file")
    p.set_defaults(func=cmd_show_breakdown)

    rl = "" if all(importlib.util.find_spec(m) for m in RL_MODULES) else " (needs xnet-gym[rl])"
    p = sub.add_parser("train", help="train an SB3 policy on a placement env" + rl)
    _add_env_args(p, TRAIN_ENV_IDS)
    p.add_argument("--algo", default=ALGOS[0], choices=ALGOS)
    p.add_argument("--timesteps", type=_nonneg_int, default=300_000,
                   help="RL timesteps (default 300000; 0 with --imitate: imitation only)")
    _add_train_time_steps(p)
    p.add_argument("--imitate", choices=IMITATION_EXPERTS,
                   help="warm start: behaviour cloning before RL (recorded in config.json): analytic, the closed "
                        "form (ExpertPlacement-v0); greedy, steepest descent (ExpertRefine-v0, with "
                        "--gain-observation so that the policy sees the gains it imitates)")
    p.add_argument("--imitation-steps", type=_positive_int, default=20_000,
                   help="demonstration steps for --imitate (default 20000)")
    p.add_argument("--encoder", choices=ENCODERS,
                   help="ExpertPlacement policy's candidate encoder (default mlp; attention: candidates attend "
                        "to each other)")
    p.add_argument("--ent-coef", type=_nonneg_float, help="PPO entropy coefficient (default 0.01)")
    p.add_argument("--learning-rate", type=_positive_float, help="PPO learning rate (default 3e-4)")
    p.add_argument("--vec", choices=VEC_KINDS,
                   help="training envs: dummy (default; SB3 DummyVecEnv of single envs) or batched (the batched "
                        "vector env: one NumPy call steps all envs; ExpertPlacement-v0, maskable_ppo)")
    p.add_argument("--n-envs", type=_positive_int, help="parallel training envs (default 8)")
    p.add_argument("--out", default="runs/train", help="run folder (model, checkpoints, TensorBoard, config)")
    p.add_argument("--resume", action="store_true", help="continue from the folder's model or last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score policies on held-out instances" + rl)
    _add_env_args(p)
    p.add_argument("--policy", nargs="+", default=["analytic"],
                   help="analytic | random | greedy (ExpertRefine-v0: steepest descent) | a baseline "
                        "(randintra-cg, randintra, randplace, space-xnet, ...) "
                        "| PATH.zip (SB3 zips hold pickles: load only files you trust)")
    p.add_argument("--episodes", type=_positive_int, default=100)
    p.add_argument("--json", action="store_true")
    p.add_argument("--csv", help="write the results as CSV")
    p.add_argument("--plot", help="write a PNG: bars per policy (+ the training curve of a .zip's run)")
    p.add_argument("--best-known", help="a solver (e.g. anneal) run on each held-out instance: every row gets "
                                        "its geomean ratio to it, and the solver gets a row")
    p.add_argument("--budget", type=_positive_float, help="the --best-known solver's time budget per instance (s)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sweep", help="a grid of training runs as Ray Tune trials, each trained then evaluated "
                                     "(needs xnet-gym[scale])")
    p.add_argument("--scenarios", nargs="+", default=["paper"],
                   help="presets or TOML paths, each optionally with env overrides: "
                        "deepseek-esft:tokens=512,train_time_steps=8 (keys: tokens, train_time_steps, time_steps)")
    p.add_argument("--objectives", nargs="+", default=["max"], choices=OBJECTIVES, help="default: max")
    p.add_argument("--seeds", nargs="+", type=_seed, default=[0, 1, 2])
    p.add_argument("--algos", nargs="+", default=[ALGOS[0]], choices=ALGOS)
    p.add_argument("--encoders", nargs="+", default=[ENCODERS[0]], choices=ENCODERS)
    p.add_argument("--timesteps", nargs="+", type=_positive_int, default=[100_000])
    p.add_argument("--imitate", choices=IMITATION_EXPERTS[:1], help="warm start every trial from the closed form")
    p.add_argument("--imitation-steps", type=_positive_int, default=20_000)
    p.add_argument("--vec", choices=VEC_KINDS, default="dummy", help="training envs (see train)")
    p.add_argument("--episodes", type=_positive_int, default=100, help="held-out instances per evaluation")
    p.add_argument("--out", default="runs/sweep", help="sweep folder: trials/, tune/, trials.csv, summary.*")
    p.add_argument("--address", help="join this Ray cluster (e.g. auto, or HEAD:6379) instead of an embedded Ray")
    p.add_argument("--resume", action="store_true", help="continue the interrupted sweep in --out")
    p.add_argument("--cpus-per-trial", type=_positive_float, default=1.0)
    p.add_argument("--max-concurrent", type=_positive_int, help="trials at once (default: as CPUs allow)")
    p.add_argument("--verbose", type=_nonneg_int, default=0, choices=(0, 1, 2))
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("benchmark", help="score policies on the frozen suite of held-out tracks (closed form, "
                                         "baselines, Python callables, SB3 zips)")
    p.add_argument("--policy", nargs="+", default=[],
                   help="analytic | a solver (steepest-descent, local-search, anneal@0.5s, anneal@20000it, "
                        "RandIntra, ...) | module:function or file.py:function | PATH.zip (SB3 zips hold pickles: "
                        "load only files you trust)")
    p.add_argument("--baselines", action="store_true",
                   help="add the closed form, the paper's strategies, steepest descent, local search and anneal "
                        "at each of the track's budgets")
    p.add_argument("--track", nargs="+", help="only these tracks (default: every full track; see --quick)")
    p.add_argument("--quick", action="store_true", help="the quick tracks (seconds, on tiny) instead of the full suite")
    p.add_argument("--suite", help="a suite TOML (default: the one shipped with xnet-gym)")
    p.add_argument("--instances", type=_positive_int, help="only the first N instances of each track (a smoke run)")
    p.add_argument("--out", default="runs/benchmark", help="folder for NAME.csv, NAME.json, NAME.md, NAME.png")
    p.add_argument("--name", default="results", help="file stem of the outputs (default: results)")
    p.add_argument("--update-best-known", action="store_true",
                   help="fold this run's best latencies into the shipped record of best known latencies")
    p.add_argument("--no-plot", action="store_true", help="no PNG (and no need for matplotlib)")
    _add_torch_threads(p)
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("replace", help="online re-placement: policies on the same held-out episodes of "
                                       "ExpertReplace-v0 (baselines, greedy, lookahead, SB3 zips)")
    p.add_argument("--scenario", default="deepseek-esft-packed-drift",
                   help="a scenario with a [workload] table (default: deepseek-esft-packed-drift)")
    p.add_argument("--policy", nargs="+", default=[],
                   help="static | static:fit=pooled | periodic-resolve[:history_tokens=N,polish=true,period=N] | "
                        "oracle | greedy | lookahead | PATH.zip (SB3 zips hold pickles: load only files you trust)")
    p.add_argument("--baselines", action="store_true", help="add " + ", ".join(REPLACE_BASELINES))
    p.add_argument("--episodes", type=_positive_int, default=20)
    p.add_argument("--seed", type=_seed, default=3_000_000_000, help="first reset seed (held-out split)")
    p.add_argument("--csv", help="write the table here")
    _add_torch_threads(p)
    p.set_defaults(func=cmd_replace)

    p = sub.add_parser("run", help="main job: train MaskablePPO, then compare with the paper's strategies" + rl)
    _add_env_args(p)
    p.add_argument("--timesteps", type=_positive_int, default=300_000)
    _add_train_time_steps(p)
    p.add_argument("--episodes", type=_positive_int, default=100)
    p.add_argument("--out", default="runs/default")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv_echo = list(sys.argv[1:] if argv is None else argv)
    _apply_torch_threads(args)
    try:
        return args.func(args)
    except XnetError as exc:
        print(f"xnet-gym: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
