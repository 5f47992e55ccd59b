"""Defects that outside clients and fuzzing found, each a test that failed before its fix."""

import gzip
import json
import pickle
import socket

import gymnasium as gym
import numpy as np
import pytest

import xnet_gym
from xnet_gym.activation import ActivationTrace, load_esft, load_trace_npz
from xnet_gym.cli import main
from xnet_gym.errors import ScenarioError, TraceError, XnetError

ENVS = ("xnet_gym/ExpertPlacement-v0", "xnet_gym/ModelPlacement-v0", "xnet_gym/ExpertRefine-v0")


# ------------------------------------------------------------------------- env contracts
@pytest.mark.parametrize("layout, obs_key, mask_key, mask_dtype", [("flat", "observations", "action_mask", np.float32),
                                                                   ("tianshou", "obs", "mask", np.bool_)])
def test_refine_env_takes_obs_layout(layout, obs_key, mask_key, mask_dtype):
    from gymnasium.utils.env_checker import check_env

    env = gym.make("xnet_gym/ExpertRefine-v0", scenario="tiny", obs_layout=layout, gain_observation=True)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {obs_key, mask_key} and obs[mask_key].dtype == mask_dtype
    assert obs[mask_key].shape == (env.action_space.n,)
    assert np.array_equal(obs[mask_key].astype(bool), env.unwrapped.action_masks())
    assert env.observation_space.contains(obs)
    check_env(env.unwrapped, skip_render_check=True)
    # The flat vector holds every feature but the mask, in the observation space's key order.
    plain = gym.make("xnet_gym/ExpertRefine-v0", scenario="tiny", gain_observation=True)
    ref, _ = plain.reset(seed=0)
    keys = [k for k in plain.observation_space.spaces if k != "action_mask"]
    assert np.array_equal(obs[obs_key], np.concatenate([ref[k] for k in keys]))


@pytest.mark.parametrize("env_id", ENVS)
def test_action_space_samples_under_both_masks(env_id):
    env = gym.make(env_id, scenario="tiny")
    obs, _ = env.reset(seed=1)
    for _ in range(3):
        for mask in (env.unwrapped.action_masks(), obs["action_mask"]):
            a = env.action_space.sample(mask=mask)
            assert env.unwrapped.action_masks()[a]
        obs, _, done, *_ = env.step(int(env.action_space.sample(mask=obs["action_mask"])))
        if done:                                   # refinement may sample its stop action
            obs, _ = env.reset()
    assert env.action_space == gym.spaces.Discrete(env.action_space.n)    # still a Discrete to everyone


@pytest.mark.parametrize("env_id", ["xnet_gym/ExpertPlacement-v0", "xnet_gym/ExpertRefine-v0"])
def test_a_pickled_env_continues_with_the_same_unseeded_resets(env_id):
    env = gym.make(env_id, scenario="paper", train_time_steps=4)
    env.reset(seed=7)
    copy = pickle.loads(pickle.dumps(env))
    for _ in range(3):
        env.reset()
        copy.reset()
        a, b = env.unwrapped.problem, copy.unwrapped.problem
        assert a.batch.layers[a.first] == b.batch.layers[b.first]
        assert np.array_equal(a.batch.sets[a.first], b.batch.sets[b.first])
        assert np.array_equal(a.batch.time_steps[a.first], b.batch.time_steps[b.first])
        assert a.reference_s == b.reference_s


@pytest.mark.parametrize("env_id", ENVS)
def test_render_mode_human_prints_the_text_view(env_id, capsys):
    env = gym.make(env_id, scenario="tiny", render_mode="human")
    env.reset(seed=0)
    env.step(int(np.flatnonzero(env.unwrapped.action_masks())[0]))
    out = capsys.readouterr().out
    assert out.count("layer ") >= 2 and "gateway" in out           # one frame per reset and step
    assert env.render() is None


def test_num_envs_beyond_memory_is_refused_with_how_many_fit():
    with pytest.raises(ScenarioError, match=r"num_envs = 1048576: needs about [\d.]+ GiB of batch state .* at most "
                                            r"[\d,]+ envs"):
        gym.make_vec("xnet_gym/ExpertPlacement-v0", num_envs=2**20, vectorization_mode="vector_entry_point",
                     scenario="paper")


def test_out_of_range_seeds_and_moves_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--scenario", "tiny", "--seed", str(2**64)])
    assert "must be >= 0 and <= 4294967295" in capsys.readouterr().err
    scenario = (tmp_path / "s.toml")
    from xnet_gym.scenario import load_scenario
    scenario.write_text(load_scenario("tiny").to_toml().replace("seed = 0", f"seed = {2**64}"))
    with pytest.raises(ScenarioError, match=r"seed = 18446744073709551616: must be an integer "
                                            r"\[0, 9223372036854775807\]"):
        load_scenario(scenario)
    with pytest.raises(ScenarioError, match=r"max_moves = 1000000000: must be an integer \[1, 1000000\]"):
        gym.make("xnet_gym/ExpertRefine-v0", scenario="tiny", max_moves=10**9)


# ----------------------------------------------------------------------------- traces
def _esft_folder(tmp_path, lines: list[str], gz: bool = False):
    folder = tmp_path / "task"
    folder.mkdir()
    for layer in (1, 2):
        data = "\n".join(lines).encode() + b"\n"
        if gz:
            (folder / f"expert_weights_{layer}.txt.gz").write_bytes(gzip.compress(data))
        else:
            (folder / f"expert_weights_{layer}.txt").write_bytes(data)
    return folder


def test_esft_files_that_are_not_text_or_are_damaged(tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "expert_weights_1.txt").write_bytes(b"1\t2\t\t0.5\xff\xfe0.5\n")
    with pytest.raises(TraceError, match=r"expert_weights_1.txt = 'byte \d+': is not UTF-8 text"):
        load_esft(folder, 4, 2)
    folder = tmp_path / "gz"
    folder.mkdir()
    (folder / "expert_weights_1.txt.gz").write_bytes(gzip.compress(b"1\t2\t\t0.5\t0.5\n")[:12])
    with pytest.raises(TraceError, match=r"expert_weights_1.txt.gz = '\w+': cannot be read: a damaged or truncated "
                                         r"gzip file"):
        load_esft(folder, 4, 2)


def test_esft_with_another_number_of_ids_per_token_is_refused(tmp_path):
    # Three ids a token, for a top-2 model: 3 tokens on a line are 9 ids, not a multiple of 2.
    line = "\t".join(["0", "1", "2", "3", "1", "2", "0", "2", "3"]) + "\t\t" + "\t".join(["0.3"] * 9)
    with pytest.raises(TraceError, match=r"expert_weights_1.txt:1 = '9 ids': a line holds top_k = 2 ids per token"):
        load_esft(_esft_folder(tmp_path, [line]), 4, 2)
    # Two tokens of three, (0 1 2) (2 3 0), divide by 2, but the pairs then repeat an expert.
    line = "\t".join(["0", "1", "2", "2", "3", "0"]) + "\t\t" + "\t".join(["0.3"] * 6)
    (tmp_path / "b").mkdir()
    with pytest.raises(TraceError, match=r"token 1: ids \[2, 2\]'?: a token's top_k = 2 experts are distinct"):
        load_esft(_esft_folder(tmp_path / "b", [line]), 4, 2)


def test_negative_gate_weights_are_refused(tmp_path):
    experts = np.tile(np.array([[0, 1]]), (3, 5, 1))
    np.savez(tmp_path / "t.npz", experts=experts, weights=np.full(experts.shape, -0.5))
    with pytest.raises(TraceError, match=r"trace.weights = -0.5: .* must be >= 0"):
        load_trace_npz(tmp_path / "t.npz", 4)
    ActivationTrace(experts, 4, np.full(experts.shape, 0.5))          # router scores are fine


def test_a_tle_shell_with_every_link_too_long_warns(tmp_path):
    import re
    from pathlib import Path

    from xnet_gym.instance import build_instance

    preset = Path(xnet_gym.__file__).parent / "scenarios" / "starlink-tle.toml"
    text = re.sub(r"max_isl_km = [\d.]+", "max_isl_km = 1.0", preset.read_text())
    text = text.replace('path = "../data/', f'path = "{preset.parent.parent / "data"}/')
    path = tmp_path / "tle.toml"
    path.write_text(text)
    with pytest.warns(UserWarning, match=r"100.0% of the TLE shell's \+Grid ISLs are longer than max_isl_km = 1.0"):
        build_instance(path, time_steps=1)


# ------------------------------------------------------------------- command-line paths
def test_evaluate_checks_its_outputs_and_budget_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    base = ["evaluate", "--scenario", "tiny", "--policy", "analytic", "--episodes", "1"]
    for extra, needle in ((["--csv", str(blocker / "x.csv")], "a_file is a file, not a folder"),
                          (["--csv", str(tmp_path)], "is a folder; give a file name"),
                          (["--plot", "/proc/x.png"], "nothing can be written under /proc"),
                          (["--budget", "5"], "--budget = 5.0: is the --best-known solver's budget")):
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (extra, err)


def test_train_show_and_run_check_their_outputs(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tb").write_text("a file where a folder goes")
    for argv, needle in ((["train", "--scenario", "tiny", "--timesteps", "64", "--out", "/proc/x"],
                          "nothing can be written under /proc"),
                         (["train", "--scenario", "tiny", "--timesteps", "64", "--out", str(tmp_path / "run")],
                          "tb is a file where a folder goes"),
                         (["show", "constellation", "--scenario", "tiny", "--out", "/proc/c.png"],
                          "nothing can be written under /proc"),
                         (["run", "--scenario", "tiny", "--timesteps", "64", "--out", "/proc/r"],
                          "nothing can be written under /proc")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (argv, err)


# ------------------------------------------------------------------------------ sweeps
def test_sweep_checks_out_address_and_overrides_before_ray(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray.tune")
    import ray

    def no_ray(*a, **k):
        raise AssertionError("Ray must not start for input that is bad")

    monkeypatch.setattr(ray, "init", no_ray)
    blocker = tmp_path / "f"
    blocker.write_text("x")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "trials").write_text("x")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()                                      # nothing listens there now
    base = ["sweep", "--scenarios", "tiny", "--seeds", "0", "--timesteps", "64"]
    for extra, needle in ((["--out", str(blocker)], "is a file; give a folder"),
                          (["--out", "/proc/sweep"], "nothing can be written under /proc"),
                          (["--out", str(tmp_path / "s")], "trials is a file where a folder goes"),
                          (["--out", str(tmp_path / "a"), "--address", "bogus"], "--address = 'bogus': allowed: auto"),
                          (["--out", str(tmp_path / "b"), "--address", f"127.0.0.1:{port}"],
                           "no Ray head answers there")):
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (extra, err)
    assert not (tmp_path / "a" / "sweep.json").exists() and not (tmp_path / "b").exists()
    for entry, needle in (("tiny:tokens=-5", "tokens = -5"), ("tiny:train_time_steps=999", "train_time_steps = 999")):
        assert main(["sweep", "--scenarios", entry, "--out", str(tmp_path / "c")]) == 2
        err = capsys.readouterr().err
        assert f"--scenarios = '{entry}'" in err and needle in err


def test_an_interrupted_sweep_exits_130_and_marks_its_summary_partial(tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray.tune")
    import ray
    from ray import tune

    from xnet_gym.agents import sweep as sweep_module

    class FakeTuner:                   # what Tune returns after Ctrl-C: no errors, one trial done
        def __init__(self, *a, **k):
            pass

        def fit(self):
            (trial,) = [t for t in trials if t.seed == 0]
            run = tmp_path / "out" / "trials" / trial.name
            run.mkdir(parents=True)
            metrics = dict.fromkeys(sweep_module.METRICS, 1.0) | {"train_wall_time_s": 1.0, "total_timesteps": 64,
                                                                  "trial_wall_time_s": 1.0}
            (run / "evaluation.json").write_text(json.dumps(metrics))
            return []

    monkeypatch.setattr(ray, "init", lambda *a, **k: None)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(tune, "Tuner", FakeTuner)
    trials = sweep_module.grid(["tiny"], ["max"], [0, 1, 2], timesteps=[64], episodes=2)
    with pytest.raises(sweep_module.SweepInterrupted, match="2 of 3 trials did not finish"):
        sweep_module.sweep(trials, tmp_path / "out")
    assert (tmp_path / "out" / "summary.md").read_text().startswith("**Partial: 1 of 3 trials finished**")
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    with pytest.raises(XnetError, match=r"--cpus-per-trial = 1000.0: no trial could ever start: the Ray cluster has "
                                        r"2 CPUs"):
        sweep_module.sweep(trials, tmp_path / "out2", cpus_per_trial=1000.0)


# ---------------------------------------------------------------------------- training
SMALL = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 1}


@pytest.mark.slow
def test_a_resumed_run_ends_exactly_on_its_budget_and_drops_half_saves(tmp_path):
    from xnet_gym.agents.train import train

    out = tmp_path / "r"
    train("xnet_gym/ExpertPlacement-v0", "tiny", "maskable_ppo", 1280, out=out, progress_bar=False,
          hyperparameters=SMALL)
    saves = sorted((out / "checkpoints").glob("model_*_steps.zip"))
    assert saves and all(int(p.stem.split("_")[1]) % 128 == 0 for p in saves)    # whole rollouts only
    # What a kill leaves: no final model, a half-written temporary of a checkpoint.
    (out / "model.zip").unlink()
    (out / "checkpoints" / ".model_1024_steps.123.tmp.zip").write_bytes(b"PK\x03\x04 half")
    done = int(saves[0].stem.split("_")[1])
    for later in saves[1:]:
        later.unlink()
    with pytest.warns(UserWarning, match=r"removed .*\.tmp\.zip, a save interrupted while it was written"):
        train("xnet_gym/ExpertPlacement-v0", "tiny", "maskable_ppo", 1280 - done, out=out, resume=True,
              progress_bar=False, hyperparameters=SMALL)
    assert json.loads((out / "config.json").read_text())["total_timesteps"] == 1280
    assert not list((out / "checkpoints").glob(".*.tmp.zip"))


@pytest.mark.slow
def test_training_off_a_terminal_prints_progress_lines(tmp_path, capsys):
    from xnet_gym.agents.train import train

    train("xnet_gym/ExpertPlacement-v0", "tiny", "maskable_ppo", 1280, out=tmp_path / "r", progress_bar=True,
          hyperparameters=SMALL)
    lines = [x for x in capsys.readouterr().out.splitlines() if "steps/s" in x]
    assert len(lines) >= 5 and "ETA" in lines[-1] and "100.0 %" in lines[-1]


def test_torch_threads_default_to_one_and_can_be_set(monkeypatch):
    pytest.importorskip("torch")
    import torch

    from xnet_gym.agents.threads import set_torch_threads, torch_threads

    monkeypatch.delenv("XNET_GYM_TORCH_THREADS", raising=False)
    assert torch_threads() == 1
    monkeypatch.setenv("XNET_GYM_TORCH_THREADS", "2")
    assert torch_threads() == 2 and set_torch_threads() == 2 == torch.get_num_threads()
    monkeypatch.setenv("XNET_GYM_TORCH_THREADS", "many")
    with pytest.raises(XnetError, match="XNET_GYM_TORCH_THREADS = 'many': must be a whole number"):
        torch_threads()
    assert set_torch_threads(1) == 1


KILLED_SWEEP = r"""
import os, signal, subprocess, sys, time
from pathlib import Path

def processes():
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
                out[int(name)] = (int(fields[1]), fields[19])
            except (OSError, IndexError):
                pass
    return out

def descendants(root):
    procs, out, frontier = processes(), {}, [root]
    while frontier:
        pid = frontier.pop()
        for child, (ppid, start) in procs.items():
            if ppid == pid and child not in out:
                out[child] = start
                frontier.append(child)
    return out

driver = subprocess.Popen([sys.executable, "-m", "xnet_gym.cli", "sweep", "--scenarios", "tiny", "--seeds", "0",
                           "--timesteps", "100000", "--out", sys.argv[1]],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    time.sleep(1.0)
    if any("ImplicitFunc" in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")
           for p in descendants(driver.pid) if Path(f"/proc/{p}").exists()):
        break
time.sleep(15.0)
tracked = descendants(driver.pid)
driver.send_signal(signal.SIGKILL)
driver.wait()
time.sleep(10.0)
now = processes()
left = [p for p, start in tracked.items() if p in now and now[p][1] == start]
for p in left:
    os.kill(p, signal.SIGKILL)           # leave the machine clean either way
print("left", len(tracked), len(left))
"""


@pytest.mark.slow
def test_a_killed_sweep_leaves_no_ray_process_behind(tmp_path):
    """A sweep killed with SIGKILL leaves no Ray process behind (agents.sweep.start_reaper):
    Ray's DashboardAgent and RuntimeEnvAgent outlived the driver before. The scenario runs in a
    plain Python process, as a user's script or shell would run it."""
    pytest.importorskip("ray.tune")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", KILLED_SWEEP, str(tmp_path / "sweep")], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    tracked, left = map(int, done.stdout.split()[-2:])
    assert tracked >= 5, done.stdout                   # Ray and its agents were running
    assert left == 0, done.stdout


def test_the_capability_table_is_what_the_envs_declare():
    import importlib

    from xnet_gym.envs import capabilities, capabilities_of

    table = importlib.import_module("xnet_gym.envs.capabilities").__doc__
    for env_id in ENVS:
        caps = capabilities(env_id)
        assert caps == capabilities_of(gym.make(env_id, scenario="tiny"))
        assert caps.table_row(env_id) in table, env_id            # the documented table is the declared one
    refine = capabilities("xnet_gym/ExpertRefine-v0")
    assert refine.refinement and refine.greedy and refine.gain_observation and refine.stop_action
    assert capabilities("xnet_gym/ExpertPlacement-v0").batched and refine.batched
    assert not capabilities("xnet_gym/ModelPlacement-v0").batched
    assert capabilities("xnet_gym/ExpertPlacement-v0").imitation_experts == ("analytic",)
    with pytest.raises(ScenarioError, match="env = 'CartPole-v1': declares no xnet_gym capabilities"):
        capabilities("CartPole-v1")
