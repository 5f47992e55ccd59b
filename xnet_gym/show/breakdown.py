"""Where the milliseconds go: the evaluator's split per method, and per-token latency CDFs."""

from __future__ import annotations

import numpy as np

from . import canvas

PARTS = (("propagation_s", "propagation", "tab:blue"), ("compute_s", "compute", "tab:orange"),
         ("outage_s", "outage penalty", "tab:red"))


def draw_breakdown(result: dict, token_latencies_s: dict[str, np.ndarray] | None = None, fig=None):
    """`result` is `compare.score_strategies`'s: stacked bars of each method's propagation,
    compute and outage seconds per token (they add up to its latency), and, given per-token
    latencies, their CDFs. Bar artists' gids: `bar:<method>:<part>`; CDF lines: `cdf:<method>`."""
    methods = list(result["methods"])
    panels = 2 if token_latencies_s else 1
    fig = fig or canvas.figure(6.0 * panels, 4.4)
    fig.clf()
    ax = fig.add_subplot(1, panels, 1)
    bottom = np.zeros(len(methods))
    x = np.arange(len(methods))
    for key, label, colour in PARTS:
        h = np.array([result["methods"][m][key] for m in methods])
        bars = ax.bar(x, h, bottom=bottom, color=colour, label=label)
        for m, bar in zip(methods, bars):
            bar.set_gid(f"bar:{m}:{key}")
        bottom += h
    for i, m in enumerate(methods):
        ax.annotate(f"{result['methods'][m]['latency_s']:.3f}", (i, bottom[i]), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("expected token latency (s)")
    ax.set_title("where the latency goes (mean over tokens and time steps)", fontsize=9)
    ax.legend(fontsize=7)
    if token_latencies_s:
        ax2 = fig.add_subplot(1, panels, 2)
        for m, values in token_latencies_s.items():
            v = np.sort(values)
            ax2.plot(v, np.arange(1, len(v) + 1) / len(v), label=m, gid=f"cdf:{m}", lw=1.2)
        ax2.set_xlabel("token latency (s), mean over time steps")
        ax2.set_ylabel("share of tokens")
        ax2.set_title("per-token latency CDF (physical max model)", fontsize=9)
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig
