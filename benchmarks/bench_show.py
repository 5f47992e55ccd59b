"""How long each `xnet-gym show` picture takes on a preset (the target: under 10 s on `paper`).

    python benchmarks/bench_show.py [--scenario paper]

Each command runs once, in this process, as the tests run it (4 time steps); the figures are
wall seconds on this machine, so run it idle and quote the command with them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from xnet_gym.cli import main as cli


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="paper")
    args = parser.parse_args(argv)
    steps = ["--time-steps", "4"]
    with tempfile.TemporaryDirectory() as tmp:
        for cmd in (["constellation", "--scenario", args.scenario, *steps, "--time-step", "1"],
                    ["placement", "--scenario", args.scenario, *steps, "--layer", "1", "--against", "random"],
                    ["breakdown", "--scenario", args.scenario, *steps, "--random-seeds", "1", "--tokens", "300"]):
            t0 = time.perf_counter()
            cli(["show", *cmd, "--out", str(Path(tmp) / f"{cmd[0]}.png")])
            print(f"show {cmd[0]:<14} {time.perf_counter() - t0:6.2f} s")


if __name__ == "__main__":
    main()
