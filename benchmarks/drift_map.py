"""The drift headroom map: when does re-placing experts pay, and how much do the copies take?

Run: python benchmarks/drift_map.py [--episodes 8] [--out benchmarks/results] [--workers 2]

Rows (held-out episodes: `split="test"`, seeds 0..episodes-1, every policy on the same ones):

- `routing`: both ESFT shells (`deepseek-esft-drift`, `deepseek-esft-packed-drift`) under
  each schedule: `static` (the three tasks mixed evenly in every window: sampling noise
  only), `cycle` (the presets' own: one task leads with 70 % for two windows, then the
  next), `switch` (one task alone for two windows, then another) and `random-walk`
  (Dirichlet, concentration 20), with the presets' binding budget (16 experts per window);
- `orbit`: `paper` and `starlink-tle`, their own routing, a static mix: only the orbit
  moves (eight windows of 25 and 12 time steps: most of an orbit), on the default budget
  (what 1 % of the ISL rate carries in a window: every expert).

Policies: `static` (closed form on the warm-up window, never moved), `static-pooled` (closed
form on the whole run's routing, installed before serving: an offline reference),
`resolve-256` and `resolve-1024` (the closed form on the last 256 / 1,024 tokens served,
every window, best changes first within the budget), `resolve-polish` (the same with
1,024 tokens and steepest descent on the history first), `resolve-all` (on every token
served so far: the online twin of `static-pooled`) and `oracle` (each window's true
routing, copies free). Columns: the geomean over episodes of each episode's mean ratio to the
per-window closed form; `recovered_pct`, the share of static's gap to the oracle the
policy closes; bytes and ISL link-bytes moved per window; the cut-over time.

Writes `drift_map.csv` and `drift_map.md` (the table docs/drift.md includes) into `--out`, the
picture to `--png` (docs/img/drift_map.png), and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from xnet_gym.atomic import atomic_write_text
from xnet_gym.baselines.replacement import Oracle, PeriodicResolve, Static, score_run
from xnet_gym.errors import ScenarioError, check_int
from xnet_gym.instance import build_instance
from xnet_gym.replacement import draw_episode
from xnet_gym.scenario import load_scenario
from xnet_gym.workload import WorkloadSpec, load_sources

POLICIES = {
    "static": lambda: Static(),
    "static-pooled": lambda: Static(fit="pooled"),
    "resolve-256": lambda: PeriodicResolve(history_tokens=256),
    "resolve-1024": lambda: PeriodicResolve(history_tokens=1024),
    "resolve-polish": lambda: PeriodicResolve(history_tokens=1024, polish=True),
    "resolve-all": lambda: PeriodicResolve(history_tokens=ALL_TOKENS),
    "oracle": lambda: Oracle(),
}
ESFT_SHELLS = ("deepseek-esft-drift", "deepseek-esft-packed-drift")
SCHEDULES = ("static", "cycle", "switch", "random-walk")
TEXT_COLUMNS = ("drift", "scenario", "schedule", "policy")
ALL_TOKENS = 10_000_000                        # more than any run serves: every token so far
ORBIT = {"paper": 25, "starlink-tle": 12}      # time steps per window: 8 windows cover most of an orbit


def cells() -> list[tuple[str, str, str]]:
    out = [("routing", sc, s) for sc in ESFT_SHELLS for s in SCHEDULES]
    return out + [("orbit", sc, "static") for sc in ORBIT]


def run_cell(cell: tuple[str, str, str], episodes: int) -> list[dict]:
    kind, name, schedule = cell
    sc = load_scenario(name)
    if kind == "routing":
        wl = dataclasses.replace(sc.workload, schedule=schedule)
        if schedule == "static":
            wl = dataclasses.replace(wl, weights=None)
    else:
        wl = WorkloadSpec(sources=("scenario",), schedule="static", windows=8, tokens_per_window=256,
                          time_steps_per_window=ORBIT[name])
    sc = dataclasses.replace(sc, workload=wl)
    inst = build_instance(sc)
    sources = load_sources(wl, sc, inst.trace, np.random.default_rng(sc.seed))
    rows = []
    results: dict[str, list] = {p: [] for p in POLICIES}
    seconds: dict[str, float] = dict.fromkeys(POLICIES, 0.0)
    for seed in range(episodes):
        ep = draw_episode(inst, wl, sc.migration, sources, np.random.default_rng(seed), split="test")
        for pname, make in POLICIES.items():
            t = time.perf_counter()
            scores = score_run(ep, make().solve(ep))
            seconds[pname] += time.perf_counter() - t
            results[pname].append(scores)
    mean_ratio = {p: np.array([np.mean([s.ratio for s in run]) for run in runs]) for p, runs in results.items()}
    geo = {p: float(np.exp(np.mean(np.log(r)))) for p, r in mean_ratio.items()}
    for pname, runs in results.items():
        flat = [s for run in runs for s in run]
        gap = geo["static"] - geo["oracle"]
        rows.append({
            "drift": kind, "scenario": name, "schedule": schedule, "policy": pname, "episodes": episodes,
            "windows": wl.windows, "tokens_per_window": wl.tokens_per_window,
            "budget_experts": int(ep.budget_experts), "geomean_ratio": round(geo[pname], 5),
            "worst_episode_ratio": round(float(mean_ratio[pname].max()), 5),
            "recovered_pct": round(100.0 * (geo["static"] - geo[pname]) / gap, 1) if gap > 0 else float("nan"),
            "experts_moved_per_window": round(float(np.mean([s.moved for s in flat])), 2),
            "mbytes_per_window": round(float(np.mean([s.bytes for s in flat])) / 1e6, 2),
            "link_mbytes_per_window": round(float(np.mean([s.link_bytes for s in flat])) / 1e6, 2),
            "cutover_s": round(float(np.mean([s.cutover_s for s in flat])), 3),
            "window_s": round(ep.window_s, 1),
            "policy_s_per_episode": round(seconds[pname] / episodes, 3),
        })
    return rows


def plot(rows: list[dict], path: Path) -> None:
    from xnet_gym.show import canvas

    keys = [(r["scenario"], r["schedule"]) for r in rows if r["policy"] == "static"]
    labels = [f"{sc.replace('deepseek-', '').replace('-drift', '')}\n{s}" for sc, s in keys]
    fig = canvas.figure(12, 4.2, dpi=110)          # its own Agg canvas: no backend is switched
    ax = fig.add_subplot()
    width = 0.8 / len(POLICIES)
    for i, p in enumerate(POLICIES):
        vals = [next(r["geomean_ratio"] for r in rows if (r["scenario"], r["schedule"]) == k and r["policy"] == p)
                for k in keys]
        ax.bar(np.arange(len(keys)) + (i - len(POLICIES) / 2 + 0.5) * width, np.asarray(vals) - 1.0, width,
               bottom=1.0, label=p)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(keys)), labels, fontsize=8)
    ax.set_ylabel("latency / per-window closed form (geomean)")
    ax.set_title("Drift headroom: held-out episodes, 8 windows; ESFT shells at 16 experts moved per window")
    ax.legend(ncol=3, fontsize=8)
    lo = min(r["geomean_ratio"] for r in rows)
    hi = max(r["geomean_ratio"] for r in rows)
    ax.set_ylim(min(0.98, lo - 0.01), hi + 0.01)
    fig.tight_layout()
    canvas.save_png(fig, path)


def markdown(rows: list[dict]) -> str:
    head = ("| scenario | schedule | policy | geomean × per-window closed form | worst episode | gap recovered "
            "| experts moved / window | MB / window | ISL link-MB / window | cut-over s |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        rec = "" if r["policy"] in ("static", "oracle") or r["recovered_pct"] != r["recovered_pct"] \
            else f"{r['recovered_pct']:.0f} %"
        lines.append(f"| {r['scenario']} | {r['schedule']} | {r['policy']} | {r['geomean_ratio']:.4f} | "
                     f"{r['worst_episode_ratio']:.4f} | {rec} | {r['experts_moved_per_window']:.1f} | "
                     f"{r['mbytes_per_window']:.0f} | {r['link_mbytes_per_window']:.0f} | {r['cutover_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--png", type=Path, default=Path(__file__).parent.parent / "docs" / "img" / "drift_map.png")
    ap.add_argument("--plot-only", action="store_true", help="redraw the picture and the Markdown from --out's CSV")
    args = ap.parse_args(argv)
    if args.plot_only:
        with open(args.out / "drift_map.csv", newline="") as fh:
            rows = [{k: v if k in TEXT_COLUMNS else float(v) for k, v in r.items()} for r in csv.DictReader(fh)]
        atomic_write_text(args.out / "drift_map.md", markdown(rows))
        plot(rows, args.png)
        print(f"wrote {args.out / 'drift_map.md'} and {args.png}")
        return
    episodes = check_int(ScenarioError, "--episodes", args.episodes, 1)
    workers = check_int(ScenarioError, "--workers", args.workers, 1)
    todo = cells()
    t = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        rows = [r for cell_rows in pool.map(run_cell, todo, [episodes] * len(todo)) for r in cell_rows]
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "drift_map.csv", out.getvalue())
    atomic_write_text(args.out / "drift_map.md", markdown(rows))
    plot(rows, args.png)
    for r in rows:
        print(f"{r['scenario']:28s} {r['schedule']:12s} {r['policy']:15s} {r['geomean_ratio']:.4f} "
              f"recovered {r['recovered_pct']:6.1f}%  moved {r['experts_moved_per_window']:5.1f}/window "
              f"{r['mbytes_per_window']:8.1f} MB  {r['link_mbytes_per_window']:9.1f} link-MB  "
              f"{r['policy_s_per_episode']:.2f} s/episode")
    print(f"wrote {args.out / 'drift_map.csv'}, drift_map.md and {args.png} in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
