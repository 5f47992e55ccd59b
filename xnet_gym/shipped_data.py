"""How the data files inside the package were made from the upstream files (run once; the
package needs only its own copies at run time).

    python -m xnet_gym.shipped_data DATA_ROOT

DATA_ROOT holds `moe/esft_deepseek_v2_lite/<task>/expert_weights_<L>.txt[.gz]` for the tasks
`intent`, `law` and `summary` (ESFT's `results/expert_scores/<task>/` files) and
`tle/starlink_celestrak_2025-12-07.txt` (the CelesTrak dump); `data/README.md` names both sources.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .activation import ActivationTrace, load_esft, save_trace_npz
from .atomic import atomic_write_text
from .tle import _satrecs, parse_tle_file, shell_mask

DATA_DIR = Path(__file__).parent / "data"
ESFT_TASKS = ("intent", "law", "summary")
ESFT_NPZ = DATA_DIR / "esft_intent.npz"
STARLINK_TLE = DATA_DIR / "starlink_53deg_547km.tle"
# The Starlink 53 deg shell near 540 km (CelesTrak's convention, a - 6378 km), 544-550 km with
# the project's R_E = 6371 km.
STARLINK_SHELL = {"inclination_deg": 53.1, "inclination_tol_deg": 0.3, "min_altitude_km": 544.0,
                  "max_altitude_km": 550.0}


def esft_npz(task: str) -> Path:
    """The shipped trace of one ESFT task (`intent` is the presets' routing; `law` and
    `summary` are the benchmark's out-of-distribution routing tracks)."""
    return DATA_DIR / f"esft_{task}.npz"


def build_esft_npz(shared: Path, task: str = "intent") -> None:
    trace = load_esft(shared / "moe" / "esft_deepseek_v2_lite" / task)
    save_trace_npz(ActivationTrace(trace.experts.astype(np.uint8), 64, trace.weights, trace.source), esft_npz(task))


def build_starlink_subset(shared: Path) -> None:
    src = shared / "tle" / "starlink_celestrak_2025-12-07.txt"
    names, l1, l2 = parse_tle_file(src)
    mask, _ = shell_mask(_satrecs(l1, l2), **STARLINK_SHELL)
    lines = []
    for n, a, b, m in zip(names, l1, l2, mask):
        if m:
            lines += [n.ljust(24), a, b]
    atomic_write_text(STARLINK_TLE, "\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m xnet_gym.shipped_data DATA_ROOT")
    root = Path(sys.argv[1])
    for task in ESFT_TASKS:
        build_esft_npz(root, task)
    build_starlink_subset(root)
    print(f"wrote {', '.join(str(esft_npz(t)) for t in ESFT_TASKS)} and {STARLINK_TLE}")
