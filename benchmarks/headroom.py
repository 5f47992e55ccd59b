"""The headroom map: where the paper's closed form is (near) optimal and where it is not.

Run: python benchmarks/headroom.py [--budget-s 5] [--out benchmarks/results]

Each point is one scenario, built from a preset with one knob turned:

- `capacity`: experts per satellite 1..4 on real DeepSeek ESFT routing (512 tokens); the
  shell's satellites per plane are sized so that each ring subnet has enough seats for the
  64 experts (130, 78, 52, 52 per plane: 79, 47, 31, 31 candidates);
- `coactivation`: the synthetic `clustered` source on `paper`'s model (8 experts, top-2),
  strength 0 (independent) to 8 (the cluster's experts nearly always fire together);
- `compute`: satellite compute rate 1 to 1000 GFLOPS on `deepseek-esft-packed`
  (compute-bound at the low end, propagation-bound at the high end);
- `objective`: `max` against `weighted` on `paper` and `deepseek-esft-packed`.

For each point and each of LAYERS (four layers spread over the model) it scores, with the
one evaluator, the expert-stage latency of: the closed form; local search; `anneal` (the
best-known search: `--budget-s` seconds per layer, seed `--seed`); and, where the layer has
at most 16 experts, the MILP (`optimum`, its incumbent and proven bound; under `weighted` an
exact assignment at any size). The latency
reported is the sum of those layers' stage latencies (s per token): the part of the token
latency a placement changes. `gap_pct` = 100 (closed form - best known) / closed form.

Writes `headroom.csv` and `headroom.png` into `--out`, and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import time
from pathlib import Path

import numpy as np

from xnet_gym.analytic import analytic_placement
from xnet_gym.atomic import atomic_write_text
from xnet_gym.baselines import Anneal, LocalSearch, Optimum
from xnet_gym.errors import ScenarioError, check_int, check_positive
from xnet_gym.instance import build_instance
from xnet_gym.latency import evaluate_stages
from xnet_gym.scenario import load_scenario
from xnet_gym.show import canvas

LAYERS_OF = {"paper": [0, 8, 16, 24], "deepseek-esft": [1, 8, 16, 24], "deepseek-esft-packed": [1, 8, 16, 24]}
MILP_MAX_EXPERTS = 16
FAMILIES = ("capacity", "coactivation", "compute_gflops", "objective")
TEXT_FIELDS = ("family", "knob", "preset", "objective", "layers")
TIME_STEPS = 8


def _with(scenario, **sections):
    """A copy of `scenario` with fields of its sections replaced (each re-validated)."""
    changes = {name: dataclasses.replace(getattr(scenario, name), **fields) for name, fields in sections.items()}
    return dataclasses.replace(scenario, **changes)


def points():
    """(family, knob value, scenario preset, Scenario, objective) of every point of the map."""
    esft = load_scenario("deepseek-esft-packed")
    for cap, per_plane in ((1, 130), (2, 78), (3, 52), (4, 52)):
        s = _with(esft, constellation={"sats_per_plane": per_plane}, placement={"experts_per_satellite": cap},
                  activation={"tokens": 512})
        yield "capacity", cap, "deepseek-esft-packed", s, "max"
    paper = load_scenario("paper")
    for strength in (0.0, 1.0, 2.0, 4.0, 8.0):
        s = _with(paper, activation={"source": "clustered", "coactivation_strength": strength, "tokens": 2000})
        yield "coactivation", strength, "paper", s, "max"
    for gflops in (1.0, 7.28, 100.0, 1000.0):
        s = _with(esft, compute={"gflops": gflops}, activation={"tokens": 512})
        yield "compute_gflops", gflops, "deepseek-esft-packed", s, "max"
    for preset, base in (("paper", paper), ("deepseek-esft-packed", _with(esft, activation={"tokens": 512}))):
        for objective in ("max", "weighted"):
            yield "objective", objective, preset, base, objective


def measure(family, knob, preset, scenario, objective, budget_s: float, seed: int, iterations: int | None = None,
            milp_time_limit_s: float | None = None) -> dict:
    inst = build_instance(scenario, time_steps=TIME_STEPS, objective=objective)
    layers = LAYERS_OF[preset]
    closed = analytic_placement(inst)

    def stage_sum(placement) -> float:
        return float(evaluate_stages(inst, placement, layers, split=False).stage_s.sum())

    row = {"family": family, "knob": knob, "preset": preset, "objective": objective,
           "layers": " ".join(map(str, layers)), "experts": inst.n_experts, "capacity": inst.capacity,
           "time_steps": TIME_STEPS, "scenario_seed": scenario.seed, "search_seed": seed,
           "budget_s_per_layer": budget_s, "anneal_iterations": iterations or ""}
    row["closed_form_s"] = stage_sum(closed)
    t = time.perf_counter()
    row["local_search_s"] = stage_sum(LocalSearch(time_budget_s=budget_s * len(layers), layers=layers).solve(inst))
    row["local_search_wall_s"] = time.perf_counter() - t
    t = time.perf_counter()
    anneal = Anneal(time_budget_s=budget_s * len(layers), seed=seed, layers=layers, iterations=iterations)
    row["anneal_s"] = stage_sum(anneal.solve(inst))
    row["anneal_wall_s"] = time.perf_counter() - t
    row["milp_s"] = row["milp_bound_s"] = float("nan")
    if inst.n_experts <= MILP_MAX_EXPERTS or objective == "weighted":      # weighted: an assignment, exact
        opt = Optimum(time_limit_s=milp_time_limit_s or max(budget_s, 1.0), layers=layers)
        row["milp_s"] = stage_sum(opt.solve(inst))
        row["milp_bound_s"] = opt.last_info["stage_bound_s"]
    row["best_known_s"] = float(np.nanmin([row["local_search_s"], row["anneal_s"], row["milp_s"]]))
    row["gap_pct"] = 100.0 * (row["closed_form_s"] - row["best_known_s"]) / row["closed_form_s"]
    row["bound_gap_pct"] = (100.0 * (row["closed_form_s"] - row["milp_bound_s"]) / row["closed_form_s"]
                            if np.isfinite(row["milp_bound_s"]) else float("nan"))
    return row


def write_plot(rows: list[dict], path: Path) -> None:
    families = list(dict.fromkeys(r["family"] for r in rows))
    fig = canvas.figure(4.2 * len(families), 3.6)
    for i, family in enumerate(families):
        ax = fig.add_subplot(1, len(families), i + 1)
        sub = [r for r in rows if r["family"] == family]
        labels = [f"{r['knob']}" if family != "objective" else f"{r['preset'].split('-')[0]}\n{r['knob']}"
                  for r in sub]
        x = np.arange(len(sub))
        ax.bar(x, [r["gap_pct"] for r in sub], color="#2b6cb0", label="best known")
        bound = [r["bound_gap_pct"] for r in sub]
        if np.isfinite(bound).any():
            ax.scatter(x, bound, color="#c53030", marker="_", s=200, label="MILP bound", zorder=3)
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_title(family.replace("_", " "))
        ax.set_ylabel("% below the closed form" if i == 0 else "")
        ax.axhline(0, color="black", lw=0.6)
    handles = {h.get_label(): h for ax in fig.axes for h in ax.get_legend_handles_labels()[0]}
    fig.legend(list(handles.values()), list(handles), loc="upper right", fontsize=8)
    fig.suptitle("Headroom: how much the best known placement beats the closed form (stage latency)")
    fig.tight_layout()
    canvas.save_png(fig, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget-s", type=float, default=5.0, help="search seconds per layer (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="anneal's seed (default 0)")
    parser.add_argument("--iterations", type=int, help="anneal's iterations per layer: a clock-free budget (with a "
                        "--budget-s long enough never to bind, results do not depend on the machine's load)")
    parser.add_argument("--milp-time-limit-s", type=float, help="the MILP's time limit per layer (default: "
                        "--budget-s, at least 1 s)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for headroom.csv and headroom.png")
    parser.add_argument("--families", nargs="*", default=None, choices=FAMILIES,
                        help="only these families: capacity, coactivation, compute_gflops, objective")
    parser.add_argument("--plot-only", action="store_true", help="redraw headroom.png from --out's headroom.csv")
    args = parser.parse_args(argv)
    try:
        check_positive(ScenarioError, "--budget-s", args.budget_s)
        check_int(ScenarioError, "--seed", args.seed, 0)
        if args.iterations is not None:
            check_int(ScenarioError, "--iterations", args.iterations, 1)
        if args.milp_time_limit_s is not None:
            check_positive(ScenarioError, "--milp-time-limit-s", args.milp_time_limit_s)
    except ScenarioError as exc:
        parser.error(str(exc))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.plot_only:
        with open(out / "headroom.csv") as fh:
            rows = [{k: (v if k in TEXT_FIELDS else float(v)) for k, v in r.items()} for r in csv.DictReader(fh)]
        write_plot(rows, out / "headroom.png")
        print(f"wrote {out / 'headroom.png'}")
        return rows
    rows = []
    for family, knob, preset, scenario, objective in points():
        if args.families and family not in args.families:
            continue
        row = measure(family, knob, preset, scenario, objective, args.budget_s, args.seed, args.iterations,
                      args.milp_time_limit_s)
        rows.append(row)
        print(f"{family:<15}{knob!s:>9} {preset:<21}{objective:<9} closed {row['closed_form_s']:.5f}  "
              f"best {row['best_known_s']:.5f}  gap {row['gap_pct']:6.2f}%  "
              f"bound gap {row['bound_gap_pct']:6.2f}%", flush=True)
    fields = list(rows[0])
    lines = [",".join(fields)] + [",".join(str(r[f]) for f in fields) for r in rows]
    atomic_write_text(out / "headroom.csv", "\n".join(lines) + "\n")
    write_plot(rows, out / "headroom.png")
    print(f"wrote {out / 'headroom.csv'} and {out / 'headroom.png'}")
    return rows


if __name__ == "__main__":
    main()
