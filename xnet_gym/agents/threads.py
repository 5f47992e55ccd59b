"""How many threads torch uses in training, evaluation and the players.

Measured (`benchmarks/bench_busy.py`, docs/performance.md): torch's default intra-op pool
(one thread per core) gains nothing on these small policies when the machine is idle, and
when other work shares the cores it makes training 3-5x slower (threads spin-wait for
cores that are busy). So xnet-gym runs torch on one thread unless told otherwise:
`--torch-threads N` on a command, or `XNET_GYM_TORCH_THREADS=N` in the environment (0 keeps
torch's own default).
"""

from __future__ import annotations

import os

from xnet_gym.errors import XnetError, field_error

VARIABLE = "XNET_GYM_TORCH_THREADS"
DEFAULT = 1


def torch_threads(requested: int | None = None) -> int:
    """The thread count to use: `requested` (a flag), else the environment variable, else 1.
    0 means torch's own default."""
    if requested is None:
        text = os.environ.get(VARIABLE, str(DEFAULT)).strip()
        if not text.isdigit():
            raise field_error(XnetError, VARIABLE, text, "must be a whole number >= 0 (0: torch's default)")
        requested = int(text)
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
        raise field_error(XnetError, "--torch-threads", requested, "must be a whole number >= 0 (0: torch's default)")
    return requested


def set_torch_threads(requested: int | None = None) -> int:
    """Apply `torch_threads(requested)`; returns the count torch now uses."""
    import torch

    n = torch_threads(requested)
    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()
