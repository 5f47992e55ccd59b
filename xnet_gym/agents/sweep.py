"""`xnet-gym sweep`: a grid of training runs as Ray Tune trials, each trained then evaluated.

A grid is the product of scenarios (each with optional env overrides, `deepseek-esft:tokens=512,
train_time_steps=8`), objectives, seeds, algorithms, policy encoders and timesteps. Every trial
calls `agents.train.train` into its own run folder under `OUT/trials/`, evaluates the model on
the held-out instances with `agents.evaluate.evaluate_player` (the one evaluator, all time
steps) and reports the evaluate metrics to Tune.

Resuming: an interrupted sweep (Ctrl-C, a lost node) restarts with `--resume`: Tune restores the
experiment from `OUT/tune/` and reruns the trials that had not finished; each of those resumes
its training from the newest intact checkpoint in its run folder (training saves one every
fifth of its steps), and a trial whose model and evaluation are already on disk only reports
them again.

Outputs in OUT: `trials.csv` (one row per trial: its settings, metrics and wall times),
`summary.csv` and `summary.md` (per configuration across seeds: mean, standard deviation,
best and worst of the geomean ratio to the closed form, mean win rate) and `summary.png`.

Ray is optional (`pip install "xnet-gym[scale]"`); by default `ray.init()` starts an embedded
local Ray that lives as long as the command. `--address` joins a running cluster instead
(`ray start --head` on one machine, `ray start --address=HEAD:6379` on the others); OUT must
then be on storage every node sees, as Tune's own storage path must.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import itertools
import json
import math
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from xnet_gym.atomic import atomic_write_text
from xnet_gym.envs.episode import EpisodeConfig
from xnet_gym.errors import XnetError, field_error
from xnet_gym.scenario import OBJECTIVES, load_scenario

from .settings import ALGOS, ENCODERS

ENV_ID = "xnet_gym/ExpertPlacement-v0"
# Scenario overrides a grid entry may carry, and their types.
SCENARIO_OVERRIDES = {"tokens": int, "train_time_steps": int, "time_steps": int}
SETTING_KEYS = ("scenario", "overrides", "objective", "algo", "encoder", "timesteps")
METRICS = ("geomean_ratio_to_analytic", "win_rate_vs_analytic", "best_ratio", "worst_ratio", "mean_latency_s",
           "mean_analytic_latency_s", "inference_s_per_instance")
INSTALL = 'pip install "xnet-gym[scale]"  (Ray Tune; with torch pinned: pip install torch==2.13.0 -e ".[rl,scale]")'


@dataclass(frozen=True)
class Trial:
    """One grid point: a training run and its evaluation."""
    scenario: str
    overrides: str                 # "tokens=512,train_time_steps=8" or ""
    objective: str
    seed: int
    algo: str
    encoder: str
    timesteps: int
    imitate: str                   # "" or "analytic"
    imitation_steps: int
    vec: str
    episodes: int

    @property
    def name(self) -> str:
        over = "." + self.overrides.replace("=", "").replace(",", ".") if self.overrides else ""
        scenario = self.scenario
        if scenario.endswith(".toml"):                  # a file: its stem, and a hash of its path
            scenario = f"{Path(scenario).stem}.{hashlib.sha1(scenario.encode()).hexdigest()[:8]}"
        return (f"{scenario}{over}-{self.objective}-{self.algo}-{self.encoder}-{self.timesteps}"
                f"{'-' + self.imitate if self.imitate else ''}-seed{self.seed}")

    def env_kwargs(self, training: bool) -> dict:
        """The trial's episode settings (`EpisodeConfig`, checked), as env keywords."""
        settings = {"scenario": self.scenario, "objective": self.objective, **parse_overrides(self.overrides)}
        if not training:
            settings.pop("train_time_steps", None)        # held-out evaluation uses every time step
        return EpisodeConfig(**settings).given()


def parse_overrides(text: str) -> dict:
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key not in SCENARIO_OVERRIDES:
            raise field_error(XnetError, "--scenarios override", part,
                              f"allowed keys: {', '.join(SCENARIO_OVERRIDES)} (as name:key=value,key=value)")
        try:
            out[key] = SCENARIO_OVERRIDES[key](value)
        except ValueError:
            raise field_error(XnetError, "--scenarios override", part, "must be an integer") from None
    return out


def split_scenario(entry: str) -> tuple[str, str]:
    """`name[:key=value,...]` -> (name, canonical overrides), both checked before Ray starts:
    the overrides by building the env a trial would train on (a bad value fails here, not 40 s
    into a trial)."""
    import gymnasium as gym

    name, _, overrides = entry.partition(":")
    load_scenario(name)
    parsed = parse_overrides(overrides)
    if parsed:
        try:
            gym.make(ENV_ID, scenario=name, **parsed).close()
        except XnetError as exc:
            raise field_error(XnetError, "--scenarios", entry, f"{exc}") from None
    return name, ",".join(f"{k}={v}" for k, v in parsed.items())


OUTPUT_FILES = ("sweep.json", "trials.csv", "summary.csv", "summary.md", "summary.png")


def check_sweep_out(out) -> Path:
    """The sweep folder and every file it will hold, checked before Ray starts."""
    from xnet_gym.atomic import output_path_problem

    out = Path(out)
    problem = output_path_problem(out, "folder")
    for name in OUTPUT_FILES:
        if problem is None and (out / name).is_dir():
            problem = f"{out / name} is a folder where the file {name} goes"
    for name in ("trials", "tune"):
        if problem is None and (out / name).exists() and not (out / name).is_dir():
            problem = f"{out / name} is a file where a folder goes"
    if problem is not None:
        raise field_error(XnetError, "--out", str(out), problem)
    return out


ADDRESS = re.compile(r"^(?:ray://)?(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")


def check_address(address: str | None, timeout_s: float = 5.0) -> None:
    """`--address`: `auto`, or HOST:PORT (ray://HOST:PORT for Ray Client) of a head that
    answers. Ray itself waits minutes on an address where nothing listens; a TCP connection
    tried here answers within `timeout_s`."""
    import socket

    if address is None or address == "auto":
        return
    m = ADDRESS.match(address)
    if m is None or not 0 < int(m["port"]) < 65536:
        raise field_error(XnetError, "--address", address, "allowed: auto, HOST:PORT (e.g. 10.0.0.5:6379) or "
                          "ray://HOST:PORT")
    try:
        socket.create_connection((m["host"].strip("[]"), int(m["port"])), timeout=timeout_s).close()
    except OSError as exc:
        raise field_error(XnetError, "--address", address, f"no Ray head answers there ({exc.strerror or exc}); "
                          "start one with `ray start --head`, or omit --address for an embedded Ray") from None


def grid(scenarios, objectives, seeds, algos=("maskable_ppo",), encoders=("mlp",), timesteps=(100_000,),
         imitate: str | None = None, imitation_steps: int = 20_000, vec: str = "dummy",
         episodes: int = 100) -> list[Trial]:
    """Every combination, in a stable order; bad values fail here with the flag's name."""
    for flag, values in (("--scenarios", scenarios), ("--objectives", objectives), ("--seeds", seeds),
                         ("--algos", algos), ("--encoders", encoders), ("--timesteps", timesteps)):
        if not values:
            raise field_error(XnetError, flag, list(values), "needs at least one value")
    for flag, values, allowed in (("--objectives", objectives, OBJECTIVES), ("--algos", algos, ALGOS),
                                  ("--encoders", encoders, ENCODERS)):
        for value in values:
            if value not in allowed:
                raise field_error(XnetError, flag, value, f"allowed: {', '.join(allowed)}")
    from .train import check_vec
    for algo in algos:
        check_vec(vec, ENV_ID, algo)
    if imitate is not None and set(algos) != {"maskable_ppo"}:
        raise field_error(XnetError, "--imitate", imitate, "needs --algos maskable_ppo only")
    split = [split_scenario(s) for s in scenarios]
    return [Trial(name, over, obj, int(seed), algo, enc, int(steps), imitate or "", imitation_steps, vec, episodes)
            for (name, over), obj, algo, enc, steps, seed
            in itertools.product(split, objectives, algos, encoders, timesteps, seeds)]


def _finished(run: Path) -> bool:
    from .train import intact

    config = run / "config.json"
    return config.is_file() and intact(run / "model.zip") and json.loads(config.read_text()).get("interrupted") is False


def _steps_in(save: Path, run: Path) -> int:
    """Timesteps behind a save: a checkpoint's name says them; model.zip's are in config.json."""
    match = re.fullmatch(r"model_(\d+)_steps", save.stem)
    if match:
        return int(match.group(1))
    try:
        return int(json.loads((run / "config.json").read_text())["total_timesteps"])
    except (OSError, ValueError, KeyError):
        return 0


def run_trial(trial: Trial, out: Path) -> dict:
    """Train the trial's run folder (or resume it from its newest intact save, or reuse it when
    it finished), evaluate the model on the held-out instances, return the metrics."""
    from .evaluate import evaluate_player, make_player
    from .train import newest_intact_save, train

    run = out / "trials" / trial.name
    result_file = run / "evaluation.json"
    if result_file.is_file() and _finished(run):
        return json.loads(result_file.read_text())                   # finished before an interruption
    t0 = time.perf_counter()
    if not _finished(run):
        save = newest_intact_save(run) if run.is_dir() else None
        if run.is_dir() and save is None:
            shutil.rmtree(run)                                       # killed before any save: start clean
        done = 0 if save is None else _steps_in(save, run)
        hp = {"encoder": trial.encoder, "vec": trial.vec}
        train(ENV_ID, trial.scenario, trial.algo, max(trial.timesteps - done, 1) if save else trial.timesteps,
              trial.seed, run, env_kwargs={k: v for k, v in trial.env_kwargs(True).items() if k != "scenario"},
              resume=save is not None, progress_bar=False, hyperparameters=hp,
              imitate=(trial.imitate or None) if save is None else None, imitation_steps=trial.imitation_steps)
    row = evaluate_player(make_player(str(run / "model.zip")), ENV_ID, trial.env_kwargs(False), trial.episodes,
                          trial.seed)
    config = json.loads((run / "config.json").read_text())
    metrics = {k: row[k] for k in METRICS}
    metrics.update(train_wall_time_s=config["wall_time_s"], total_timesteps=config["total_timesteps"],
                   trial_wall_time_s=time.perf_counter() - t0)
    atomic_write_text(result_file, json.dumps(metrics, indent=2) + "\n")
    return metrics


def _trainable(config: dict) -> None:
    """Ray Tune's function trainable: one trial."""
    from ray import tune

    trial = Trial(**config["trial"])
    metrics = run_trial(trial, Path(config["out"]))
    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(Path(config["out"]) / "trials" / trial.name)))


# A watchdog for the embedded Ray: Ray's node manager starts agents (DashboardAgent,
# RuntimeEnvAgent) that outlive a driver killed with SIGKILL, which no handler can catch. This
# small process, started before Ray, remembers every descendant of the driver and kills the
# ones still alive once the driver is gone (it is reparented then). Linux only (/proc).
REAPER = r"""
import os, signal, sys, time
driver = int(sys.argv[1])

def table():
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                out[int(name)] = (int(fields[1]), fields[19])      # ppid, start time
            except (OSError, IndexError, ValueError):
                pass
    return out

known = {}
while os.getppid() == driver:
    procs = table()
    frontier, seen = [driver], set()
    while frontier:
        pid = frontier.pop()
        for child, (ppid, start) in procs.items():
            if ppid == pid and child not in seen and child != os.getpid():
                seen.add(child)
                known[child] = start
                frontier.append(child)
    time.sleep(0.5)
time.sleep(1.0)                      # let Ray's own fate sharing act first
for pid, (_, start) in table().items():
    if known.get(pid) == start:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""


def start_reaper():
    """The watchdog above, for an embedded Ray started by this process (None off Linux)."""
    import os
    import subprocess
    import sys

    if not os.path.isdir("/proc/self"):
        return None
    # A session of its own: a Ctrl-C to the terminal's process group leaves it to do its job.
    return subprocess.Popen([sys.executable, "-c", REAPER, str(os.getpid())], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def require_ray():
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.tune") is None:
        raise XnetError(f"xnet-gym sweep needs Ray Tune, which is not installed: {INSTALL}")
    import ray
    return ray


def sweep(trials: list[Trial], out, *, address: str | None = None, resume: bool = False,
          cpus_per_trial: float = 1.0, max_concurrent: int | None = None, verbose: int = 0) -> list[dict]:
    """Run the trials on Ray Tune; write trials.csv and the summary; return the trial rows."""
    ray = require_ray()
    from ray import tune

    out = Path(out).resolve()
    plan = out / "sweep.json"
    planned = {"trials": [asdict(t) for t in trials]}
    tune_dir = out / "tune"
    if resume:
        if not plan.is_file() or not tune.Tuner.can_restore(str(tune_dir / "sweep")):
            raise field_error(XnetError, "--resume", str(out), "holds no sweep to resume (no sweep.json and "
                              "tune/sweep state)")
        if json.loads(plan.read_text()) != planned:
            raise field_error(XnetError, "--resume", str(out), "was started with another grid; resume it with "
                              "the same flags, or sweep into a new --out")
    elif plan.exists():
        raise field_error(XnetError, "--out", str(out), "already holds a sweep; add --resume to continue it, or "
                          "choose a new folder")
    check_address(address)
    started_here = not ray.is_initialized()
    reaper = start_reaper() if started_here and address is None else None
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=verbose > 0,
                     configure_logging=verbose > 0, logging_level="INFO" if verbose else "ERROR")
        except (ConnectionError, ValueError, RuntimeError) as exc:
            if reaper is not None:
                reaper.terminate()
            raise field_error(XnetError, "--address", address, f"Ray could not start or join there ({exc})") from None
    try:
        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        if cpus_per_trial > cpus:
            raise field_error(XnetError, "--cpus-per-trial", cpus_per_trial,
                              f"no trial could ever start: the Ray cluster has {cpus:g} CPUs")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(plan, json.dumps(planned, indent=2) + "\n")
        trainable = tune.with_resources(_trainable, {"cpu": cpus_per_trial})
        if resume:
            tuner = tune.Tuner.restore(str(tune_dir / "sweep"), trainable=trainable, resume_unfinished=True,
                                       resume_errored=True)
        else:
            space = {"out": str(out), "trial": tune.grid_search([asdict(t) for t in trials])}
            tuner = tune.Tuner(
                trainable, param_space=space,
                tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent),
                run_config=tune.RunConfig(name="sweep", storage_path=str(tune_dir), verbose=verbose,
                                          failure_config=tune.FailureConfig(max_failures=1)))
        results = tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
        if reaper is not None:
            reaper.terminate()
    errors = [results[i].error for i in range(len(results)) if results[i].error is not None]
    rows = []
    for t in trials:
        file = out / "trials" / t.name / "evaluation.json"
        if file.is_file():
            rows.append({**asdict(t), "trial": t.name, **json.loads(file.read_text())})
    write_outputs(rows, out, planned=len(trials))
    if len(rows) < len(trials) and not errors:
        # Tune catches Ctrl-C itself and returns what finished: the grid is not done.
        raise SweepInterrupted(f"{len(trials) - len(rows)} of {len(trials)} trials did not finish")
    if errors:
        raise XnetError(f"{len(errors)} of {len(trials)} trials failed (first: {errors[0]}); the others are in "
                        f"{out / 'trials.csv'}; rerun with --resume to retry them")
    return rows


class SweepInterrupted(KeyboardInterrupt):
    """Some trials of the grid never finished (Ctrl-C, a stopped cluster); the outputs written
    are labelled partial."""


def read_trials_csv(path) -> list[dict]:
    """`trials.csv` back as trial rows, numbers as numbers (for plots redrawn from a committed
    sweep, as `scripts/make_images.py` does)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    typed = {**dict.fromkeys((*METRICS, "train_wall_time_s", "trial_wall_time_s"), float),
             "seed": int, "timesteps": int, "total_timesteps": int, "episodes": int, "imitation_steps": int}
    return [{k: (typed[k](v) if k in typed else v) for k, v in row.items()} for row in rows]


def summarise(rows: list[dict]) -> list[dict]:
    """Per configuration (everything but the seed): mean and spread across seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in SETTING_KEYS), []).append(r)
    out = []
    for key, members in groups.items():
        ratios = np.array([m["geomean_ratio_to_analytic"] for m in members])
        out.append({**dict(zip(SETTING_KEYS, key)), "seeds": len(members),
                    "mean_geomean_ratio": float(ratios.mean()),
                    "std_geomean_ratio": float(ratios.std(ddof=1)) if len(ratios) > 1 else 0.0,
                    "best_seed_ratio": float(ratios.min()), "worst_seed_ratio": float(ratios.max()),
                    "mean_win_rate": float(np.mean([m["win_rate_vs_analytic"] for m in members])),
                    "worst_instance_ratio": float(max(m["worst_ratio"] for m in members)),
                    "mean_train_wall_time_s": float(np.mean([m["train_wall_time_s"] for m in members]))})
    return out


def _write_csv(path: Path, rows: list[dict]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    from xnet_gym.atomic import atomic_write
    atomic_write(path, write)


def write_outputs(rows: list[dict], out: Path, planned: int | None = None) -> None:
    if not rows:
        return
    _write_csv(out / "trials.csv", rows)
    summary = summarise(rows)
    _write_csv(out / "summary.csv", summary)
    partial = "" if planned is None or len(rows) >= planned else (
        f"**Partial: {len(rows)} of {planned} trials finished** (the sweep was interrupted; `--resume` "
        "runs the rest).\n\n")
    atomic_write_text(out / "summary.md", partial + summary_markdown(summary) + "\n")
    if importlib.util.find_spec("matplotlib") is not None:
        plot_summary(rows, summary, out / "summary.png")


def summary_markdown(summary: list[dict]) -> str:
    lines = ["| scenario | objective | algo | encoder | timesteps | seeds | geomean x analytic, mean ± sd | "
             "best / worst seed | win rate | worst instance | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        name = s["scenario"] + (f" ({s['overrides']})" if s["overrides"] else "")
        lines.append(f"| {name} | {s['objective']} | {s['algo']} | {s['encoder']} | {s['timesteps']} | {s['seeds']} "
                     f"| {s['mean_geomean_ratio']:.4f} ± {s['std_geomean_ratio']:.4f} | "
                     f"{s['best_seed_ratio']:.4f} / {s['worst_seed_ratio']:.4f} | {100 * s['mean_win_rate']:.0f} % "
                     f"| {s['worst_instance_ratio']:.4f} | {s['mean_train_wall_time_s']:.0f} |")
    return "\n".join(lines)


def plot_summary(rows: list[dict], summary: list[dict], path: Path) -> None:
    from xnet_gym.show.canvas import figure, save_png

    fig = figure(8, 0.6 * len(summary) + 1.6)
    ax = fig.add_subplot(1, 1, 1)
    labels = []
    for i, s in enumerate(summary):
        key = tuple(s[k] for k in SETTING_KEYS)
        seeds = [r["geomean_ratio_to_analytic"] for r in rows if tuple(r[k] for k in SETTING_KEYS) == key]
        ax.scatter(seeds, [i] * len(seeds), color="0.55", s=18, zorder=2, label="seed" if i == 0 else None)
        ax.errorbar(s["mean_geomean_ratio"], i, xerr=s["std_geomean_ratio"], fmt="o", color="C0", capsize=4,
                    zorder=3, label="mean ± sd" if i == 0 else None)
        over = f" ({s['overrides']})" if s["overrides"] else ""
        labels.append(f"{s['scenario']}{over} {s['objective']}\n{s['algo']} {s['encoder']} {s['timesteps']:,}")
    ax.axvline(1.0, color="k", lw=0.8, ls="--", label="closed form")
    ax.set_yticks(range(len(summary)), labels, fontsize=7)
    ax.set_xlabel("geomean latency / closed form on held-out instances (lower is better)")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="best")
    finite = [r["geomean_ratio_to_analytic"] for r in rows if math.isfinite(r["geomean_ratio_to_analytic"])]
    if finite:
        lo, hi = min([*finite, 1.0]), max([*finite, 1.0])
        pad = max(hi - lo, 1e-3) * 0.15
        ax.set_xlim(lo - pad, hi + pad)
    fig.tight_layout()
    save_png(fig, path)
