"""Score several placement strategies on one instance, side by side, with one evaluator."""

from __future__ import annotations

import time

import numpy as np

from .instance import Instance
from .latency import evaluate


def score_strategies(instance: Instance, solvers: dict, random_seeds: int = 5, seed: int = 0) -> dict:
    """{name: row} for `solvers` ({name: factory(seed) -> solver}); randomised solvers are
    averaged over `random_seeds` seeds (seed, seed + 1, ...), and their spread is reported."""
    rows = {}
    for name, factory in solvers.items():
        probe = factory(seed)
        seeds = range(seed, seed + random_seeds) if getattr(probe, "randomized", False) else [seed]
        reports, times = [], []
        for s in seeds:
            solver = factory(s)
            t0 = time.perf_counter()
            placement = solver.solve(instance)
            times.append(time.perf_counter() - t0)
            reports.append(evaluate(instance, placement))
        lat = np.array([r.latency_s for r in reports])
        rows[name] = {
            "latency_s": float(lat.mean()),
            "latency_std_s": float(lat.std()),
            "propagation_s": float(np.mean([r.propagation_s for r in reports])),
            "compute_s": float(np.mean([r.compute_s for r in reports])),
            "outage_s": float(np.mean([r.outage_s for r in reports])),
            "outage_rate": float(np.mean([r.outage_rate for r in reports])),
            "seeds": len(reports),
            "solve_time_s": float(np.mean(times)),
        }
        extra = getattr(solver, "last_info", None)
        if extra:
            rows[name].update(extra)
    ref = rows.get("Space-XNet", next(iter(rows.values())))["latency_s"]
    for row in rows.values():
        row["ratio_to_space_xnet"] = row["latency_s"] / ref
    opt = rows.get("optimum")
    if opt is not None:
        # A time-limited MILP gives an incumbent and a proven bound: report both gaps.
        bound = opt["latency_s"] - (opt.get("stage_sum_s", 0.0) - opt.get("stage_bound_s", 0.0))
        opt["lower_bound_s"] = bound
        for row in rows.values():
            row["gap_to_optimum"] = row["latency_s"] / opt["latency_s"] - 1.0
            row["gap_to_bound"] = row["latency_s"] / bound - 1.0
    return rows


def format_table(rows: dict, title: str = "") -> str:
    gaps = any("gap_to_optimum" in r for r in rows.values())
    head = f"{'method':<16}{'s/token':>10}{'x Space-XNet':>14}{'propag. s':>11}{'compute s':>11}" \
           f"{'outage s':>10}{'outage %':>10}{'seeds':>7}{'solve s':>9}"
    if gaps:
        head += f"{'gap to opt.':>13}{'gap to bound':>14}"
    lines = ([title] if title else []) + [head, "-" * len(head)]
    for name, r in rows.items():
        line = (f"{name:<16}{r['latency_s']:>10.4f}{r['ratio_to_space_xnet']:>14.3f}"
                f"{r['propagation_s']:>11.4f}{r['compute_s']:>11.4f}{r['outage_s']:>10.4f}"
                f"{100 * r['outage_rate']:>10.4f}{r['seeds']:>7}{r['solve_time_s']:>9.2f}")
        if gaps:
            line += f"{100 * r['gap_to_optimum']:>12.3f}%{100 * r['gap_to_bound']:>13.3f}%"
        lines.append(line)
    if gaps:
        opt = rows["optimum"]
        state = "proven optimal" if opt.get("optimal") else \
            f"time limit hit: proven lower bound {opt['lower_bound_s']:.4f} s/token (MILP gap {100 * opt['mip_gap']:.2f}%)"
        lines.append(f"optimum: {state}")
    return "\n".join(lines)
