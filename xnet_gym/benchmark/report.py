"""The benchmark's outputs: `NAME.csv` (one row per track and policy), `NAME.json` (the rows,
every instance's latency and time, the instance hashes and the run's provenance), `NAME.md`
(a table per track) and `NAME.png` (geomean × closed form against time per instance). Every
file is written atomically."""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import platform
import subprocess
from pathlib import Path

from .. import __version__
from ..atomic import atomic_write_text, output_path_problem
from ..errors import field_error
from .runner import TrackResult
from .suite import BenchmarkError

COLUMNS = ("track", "group", "policy", "kind", "instances", "geomean_x_closed_form", "geomean_x_best_known",
           "win_rate", "best_x_closed_form", "worst_x_closed_form", "mean_latency_s", "s_per_instance", "batch")


def check_out_dir(out) -> Path:
    """The output folder, checked before any work (nothing is created until the results are)."""
    out = Path(out)
    problem = output_path_problem(out, "folder")
    if problem is not None:
        raise field_error(BenchmarkError, "--out", str(out), problem)
    return out


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def provenance(suite_version: int, command: str) -> dict:
    return {"suite_version": suite_version, "xnet_gym_version": __version__, "commit": _commit(),
            "command": command, "created_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}


def all_rows(results: list[TrackResult]) -> list[dict]:
    return [row for r in results for row in r.rows()]


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in COLUMNS})
    return buf.getvalue()


def markdown_text(results: list[TrackResult], meta: dict) -> str:
    lines = [f"# Benchmark results (suite v{meta['suite_version']})", "",
             f"`{meta['command']}` at commit {meta['commit'] or 'unknown'} (xnet-gym {meta['xnet_gym_version']}), "
             f"{meta['created_utc']}, {meta['machine']}. Ratios are geometric means over the track's instances of "
             "the policy's latency over the closed form's on the same instance (× closed form) and over the "
             "best latency known for it (× best known); a win is an instance where the policy is faster than "
             "the closed form. `s/instance` is wall time on this machine (searches with a wall-time budget "
             "spend it). RandIntra and RandPlace move the gateways, another problem: their ratios are "
             "reported, but they never set the best known.", ""]
    for r in results:
        t = r.track
        lines += [f"## {t.name} ({t.group})", "",
                  f"{t.description} {len(r.reference_s)} instances, objective `{t.objective}`, env `{t.env}`, "
                  f"instances sha256 `{r.instances_sha256[:16]}`.", "",
                  "| policy | kind | × closed form | × best known | win rate | best | worst | s/instance | batch |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in sorted(r.rows(), key=lambda x: x["geomean_x_closed_form"]):
            lines.append(f"| {row['policy']} | {row['kind']} | {row['geomean_x_closed_form']:.4f} | "
                         f"{row['geomean_x_best_known']:.4f} | {100 * row['win_rate']:.0f} % | "
                         f"{row['best_x_closed_form']:.3f} | {row['worst_x_closed_form']:.3f} | "
                         f"{row['s_per_instance']:.4f} | {row['batch']} |")
        lines.append("")
    return "\n".join(lines)


def json_text(results: list[TrackResult], meta: dict) -> str:
    tracks = {}
    for r in results:
        tracks[r.track.name] = {
            "group": r.track.group, "scenario": r.track.scenario if not os.path.isabs(r.track.scenario)
            else Path(r.track.scenario).name, "objective": r.track.objective,
            "seeds": list(r.track.seeds[: len(r.reference_s)]), "instances_sha256": r.instances_sha256,
            "closed_form_latency_s": r.reference_s.tolist(),
            "best_known_latency_s": None if r.best_known_s is None else r.best_known_s.tolist(),
            "best_known_by": r.best_known_by,
            "policies": {n: {"kind": r.kind[n], "latency_s": r.latency_s[n].tolist(),
                             "wall_s": r.wall_s[n].tolist()} for n in r.latency_s}}
    return json.dumps({**meta, "rows": all_rows(results), "tracks": tracks}, indent=1) + "\n"


def write_plot(rows: list[dict], path: Path) -> None:
    """One panel per track: geomean × closed form against seconds per instance (log), zoomed
    on the closed form's neighbourhood; policies off the scale are listed in the panel."""
    from ..show import canvas

    tracks = list(dict.fromkeys(r["track"] for r in rows))
    n = len(tracks)
    cols = min(4, n)
    nrows = (n + cols - 1) // cols
    fig = canvas.figure(4.4 * cols, 3.6 * nrows, dpi=90)
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    colours = {"closed-form": "k", "baseline": "tab:grey", "search": "tab:blue", "learned": "tab:red",
               "user": "tab:green"}
    for ax, track in zip(axes, tracks):
        mine = [r for r in rows if r["track"] == track]
        ratios = [float(r["geomean_x_closed_form"]) for r in mine]
        top = 1.0 + max(0.01, 0.25 * (1.0 - min(ratios)))
        off = []
        for r, ratio in zip(mine, ratios):
            x = max(float(r["s_per_instance"]), 1e-4)
            if ratio > top:
                off.append(f"{r['policy']} {ratio:.2f}")
                continue
            ax.scatter(x, ratio, color=colours.get(r["kind"], "tab:purple"), s=22, zorder=3)
            ax.annotate(r["policy"].replace("learned:", ""), (x, ratio), fontsize=6, xytext=(3, 2),
                        textcoords="offset points")
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_title(track, fontsize=9)
        ax.set_xlabel("s per instance", fontsize=8)
        ax.set_ylabel("geomean × closed form", fontsize=8)
        ax.tick_params(labelsize=7)
        if off:
            ax.text(0.02, 0.04, "above the scale:\n" + "\n".join(off), transform=ax.transAxes, fontsize=5.5,
                    va="bottom", color="0.35")
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle("latency against time per instance; colour = kind: closed form black, baseline grey, search blue, "
                 "learned red, user green", fontsize=8)
    fig.tight_layout()
    canvas.save_png(fig, path)


def write_outputs(results: list[TrackResult], out: Path, name: str, meta: dict, plot: bool = True) -> list[Path]:
    rows = all_rows(results)
    paths = [out / f"{name}.csv", out / f"{name}.json", out / f"{name}.md"]
    atomic_write_text(paths[0], csv_text(rows))
    atomic_write_text(paths[1], json_text(results, meta))
    atomic_write_text(paths[2], markdown_text(results, meta))
    if plot:
        write_plot(rows, out / f"{name}.png")
        paths.append(out / f"{name}.png")
    return paths
