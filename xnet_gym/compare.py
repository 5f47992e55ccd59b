"""Score several placement methods on one instance, side by side, with one evaluator.

The rows come from whatever solvers the caller passes; nothing here knows a solver by name.
A solver may mark itself `reference = True` (the row every other is a ratio of; else the
first row) and may report in `last_info` a `latency_lower_bound_s` (a proven lower bound on
the token latency, e.g. from a MILP) and `optimal` (its placement is proven optimal).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .instance import Instance
from .latency import evaluate


def score_strategies(instance: Instance, solvers: dict[str, Callable], random_seeds: int = 5,
                     seed: int = 0, keep_placements: bool = False) -> dict:
    """{name: row} for `solvers` ({name: factory(seed) -> solver}); randomised solvers are
    averaged over `random_seeds` seeds (seed, seed + 1, ...), and their spread is reported.
    `keep_placements` adds {"placements": {name: the first seed's Placement}}."""
    rows: dict[str, dict] = {}
    placements: dict = {}
    reference = None
    for name, factory in solvers.items():
        probe = factory(seed)
        if getattr(probe, "reference", False) and reference is None:
            reference = name
        seeds = range(seed, seed + random_seeds) if getattr(probe, "randomized", False) else [seed]
        reports, times = [], []
        for s in seeds:
            solver = factory(s)
            t0 = time.perf_counter()
            placement = solver.solve(instance)
            times.append(time.perf_counter() - t0)
            reports.append(evaluate(instance, placement))
            placements.setdefault(name, placement)
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
            **(getattr(solver, "last_info", None) or {}),
        }
    reference = reference or next(iter(rows))
    ref = rows[reference]["latency_s"]
    best = min(r["latency_s"] for r in rows.values())
    bounds = [r["latency_lower_bound_s"] for r in rows.values() if "latency_lower_bound_s" in r]
    bound = max(bounds) if bounds else None
    for row in rows.values():
        row["ratio_to_reference"] = row["latency_s"] / ref
        row["gap_to_best_known"] = row["latency_s"] / best - 1.0
        if bound is not None:
            row["gap_to_bound"] = row["latency_s"] / bound - 1.0
    result = {"reference": reference, "best_known_s": best, "lower_bound_s": bound, "methods": rows}
    if keep_placements:
        result["placements"] = placements
    return result


def format_table(result: dict, title: str = "") -> str:
    rows, bound = result["methods"], result["lower_bound_s"]
    head = (f"{'method':<16}{'s/token':>10}{'x ' + result['reference']:>14}{'propag. s':>11}{'compute s':>11}"
            f"{'outage s':>10}{'outage %':>10}{'seeds':>7}{'solve s':>9}{'gap to best':>13}")
    if bound is not None:
        head += f"{'gap to bound':>14}"
    lines = ([title] if title else []) + [head, "-" * len(head)]
    for name, r in rows.items():
        line = (f"{name:<16}{r['latency_s']:>10.4f}{r['ratio_to_reference']:>14.3f}"
                f"{r['propagation_s']:>11.4f}{r['compute_s']:>11.4f}{r['outage_s']:>10.4f}"
                f"{100 * r['outage_rate']:>10.4f}{r['seeds']:>7}{r['solve_time_s']:>9.2f}"
                f"{100 * r['gap_to_best_known']:>12.3f}%")
        if bound is not None:
            line += f"{100 * r['gap_to_bound']:>13.3f}%"
        lines.append(line)
    proven = [n for n, r in rows.items() if r.get("optimal")]
    if proven:
        lines.append(f"proven optimal: {', '.join(proven)}")
    elif bound is not None:
        lines.append(f"no placement proven optimal; proven lower bound {bound:.4f} s/token")
    return "\n".join(lines)
