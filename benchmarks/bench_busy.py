"""The product on a busy machine: wall time idle and beside two busy loops, per torch thread setting.

    python benchmarks/bench_busy.py                       # 16k-step training runs, both thread settings
    python benchmarks/bench_busy.py --main-job            # and the main job (`xnet-gym run`) itself

A busy loop is a Python process spinning on one core (`while True: pass`); two of them take
both cores of this project's machines, as other users' jobs do. Every command is the real CLI
in a subprocess, timed as a whole. `XNET_GYM_TORCH_THREADS=0` is torch's own default (one
thread per core); 1 is xnet-gym's default. Run it on an otherwise idle machine: the idle rows
need the machine to themselves.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def busy_loops(n: int):
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(1.0)                       # let them take the cores
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def timed(cmd: list[str], threads: int) -> float:
    env = {**os.environ, "XNET_GYM_TORCH_THREADS": str(threads)}
    env.pop("OMP_NUM_THREADS", None)          # let torch pick its own default when told 0
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timesteps", type=int, default=16_384, help="training steps of the short runs")
    parser.add_argument("--main-job", action="store_true", help="also time `xnet-gym run` (about 2.5 min idle)")
    args = parser.parse_args(argv)
    xnet = str(Path(sys.executable).with_name("xnet-gym"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        def train(tag: str) -> list[str]:
            return [xnet, "train", "--scenario", "paper", "--timesteps", str(args.timesteps), "--no-progress",
                    "--out", str(Path(tmp) / tag)]

        for threads in (1, 0):
            label = "xnet-gym default (1 thread)" if threads == 1 else "torch default (1 per core)"
            idle = timed(train(f"idle{threads}"), threads)
            with busy_loops(2):
                busy = timed(train(f"busy{threads}"), threads)
            rows.append((f"train --timesteps {args.timesteps}, {label}", idle, busy))
            print(f"{rows[-1][0]:<58} idle {idle:7.1f} s   busy {busy:7.1f} s   x{busy / idle:4.2f}", flush=True)
        if args.main_job:
            run = [xnet, "run", "--no-progress", "--no-plot"]
            idle = timed([*run, "--out", str(Path(tmp) / "main-idle")], 1)
            with busy_loops(2):
                busy = timed([*run, "--out", str(Path(tmp) / "main-busy")], 1)
            rows.append(("the main job (xnet-gym run), xnet-gym default", idle, busy))
            print(f"{rows[-1][0]:<58} idle {idle:7.1f} s   busy {busy:7.1f} s   x{busy / idle:4.2f}", flush=True)
    print("\n| command | idle s | beside two busy loops s | ratio |\n|---|---|---|---|")
    for name, idle, busy in rows:
        print(f"| {name} | {idle:.1f} | {busy:.1f} | {busy / idle:.2f} |")


if __name__ == "__main__":
    main()
