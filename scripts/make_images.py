"""Regenerate every image the README shows into docs/img/, from one command:

    python scripts/make_images.py              # about 6 minutes (trains the main job once)
    python scripts/make_images.py --curve-from runs/default   # reuse a finished main job

- constellation.png: `xnet-gym show constellation --scenario paper`
- constellation-starlink.png: the same on the real Starlink shell (uneven planes)
- placement.png: the closed form against `anneal` on layer 1 of `deepseek-esft-packed`
- breakdown.png: `xnet-gym show breakdown` on `paper` with local search and anneal
- learning_curve.png: the main job's comparison plot (bars + training curve)
- headroom.png: `benchmarks/headroom.py --plot-only` from the committed headroom.csv
- drift_map.png: `benchmarks/drift_map.py --plot-only` from the committed drift_map.csv
- sweep-summary.png: the README sweep's summary plot, from the committed
  benchmarks/results/sweep/trials.csv (the sweep itself: the command in the README)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"


def xnet(*args: str) -> None:
    from xnet_gym.cli import main

    if main(list(args)) != 0:
        sys.exit(f"failed: xnet-gym {' '.join(args)}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--curve-from", help="a finished `xnet-gym run` folder to take the learning curve from")
    args = parser.parse_args(argv)
    IMG.mkdir(parents=True, exist_ok=True)
    xnet("show", "constellation", "--scenario", "paper", "--time-step", "0", "--out", str(IMG / "constellation.png"))
    xnet("show", "constellation", "--scenario", "starlink-tle", "--time-step", "0",
         "--out", str(IMG / "constellation-starlink.png"))
    xnet("show", "placement", "--scenario", "deepseek-esft-packed", "--time-steps", "8", "--layer", "1",
         "--policy", "analytic", "--against", "anneal", "--out", str(IMG / "placement.png"))
    xnet("show", "breakdown", "--scenario", "paper", "--time-steps", "20", "--solvers", "local-search", "anneal",
         "--time-limit", "10", "--random-seeds", "1", "--out", str(IMG / "breakdown.png"))
    run = Path(args.curve_from) if args.curve_from else ROOT / "runs" / "readme-images"
    if not (run / "comparison.png").is_file():
        xnet("run", "--out", str(run), "--no-progress")
    shutil.copyfile(run / "comparison.png", IMG / "learning_curve.png")
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "headroom.py"), "--plot-only"], check=True, cwd=ROOT)
    shutil.copyfile(ROOT / "benchmarks" / "results" / "headroom.png", IMG / "headroom.png")
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "drift_map.py"), "--plot-only", "--png",
                    str(IMG / "drift_map.png")], check=True, cwd=ROOT)
    from xnet_gym.agents.sweep import plot_summary, read_trials_csv, summarise

    trials = read_trials_csv(ROOT / "benchmarks" / "results" / "sweep" / "trials.csv")
    plot_summary(trials, summarise(trials), IMG / "sweep-summary.png")
    print(f"images in {IMG}")


if __name__ == "__main__":
    main()
