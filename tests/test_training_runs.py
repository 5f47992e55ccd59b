"""Training runs that survive interruption, and output paths checked before the work starts."""

import json
import os
import time
import zipfile

import pytest

from xnet_gym.agents import train as train_module
from xnet_gym.agents.train import newest_intact_save, save_atomically, train
from xnet_gym.cli import main
from xnet_gym.errors import XnetError

EXPERT = "xnet_gym/ExpertPlacement-v0"
SMALL = {"n_envs": 2, "n_steps": 128, "batch_size": 128, "n_epochs": 1}


def run(out, steps=256, **kw):
    return train(EXPERT, "tiny", "maskable_ppo", steps, seed=0, out=out, progress_bar=False,
                 hyperparameters=SMALL, **kw)


def curve_rows(out):
    lines = (out / "training_curve.csv").read_text().splitlines()
    assert lines[0] == "timesteps,ratio_to_analytic"
    return [int(line.split(",")[0]) for line in lines[1:]]


@pytest.mark.slow
def test_resume_takes_the_newest_intact_save_and_extends_the_curve(tmp_path):
    out = run(tmp_path / "r")
    first = curve_rows(out)
    assert first and max(first) <= 256
    # A newer, truncated checkpoint (a kill mid-save before saves were atomic) is skipped...
    (out / "checkpoints").mkdir(exist_ok=True)     # one rollout of 256 steps: no checkpoint of its own
    newest = out / "checkpoints" / "model_9999_steps.zip"
    newest.write_bytes((out / "model.zip").read_bytes()[:100])
    time.sleep(0.01)
    os.utime(newest)
    with pytest.warns(UserWarning, match="skipping .*model_9999_steps.zip, a truncated or damaged save"):
        assert newest_intact_save(out) == out / "model.zip"
    # ...and a newer intact checkpoint wins over an older model.zip (64k steps were lost before).
    newer = out / "checkpoints" / "model_5000_steps.zip"
    newer.write_bytes((out / "model.zip").read_bytes())
    os.utime(newer, (time.time() + 5, time.time() + 5))
    assert newest_intact_save(out) == newer
    newest.unlink()
    run(out, resume=True)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["resumed_from"].endswith("model_5000_steps.zip") and cfg["total_timesteps"] >= 256 + 256
    rows = curve_rows(out)
    assert rows[: len(first)] == first and max(rows) > 256    # one curve, whole across the resume


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(tmp_path):
    out = run(tmp_path / "r")
    with pytest.raises(XnetError, match=r"--resume = .*: that run used env_kwargs = .*'tiny'"):
        train(EXPERT, "paper", "maskable_ppo", 256, out=out, resume=True, progress_bar=False, hyperparameters=SMALL)
    with pytest.raises(XnetError, match=r"that run used algo = 'maskable_ppo', not 'ppo'"):
        train(EXPERT, "tiny", "ppo", 256, out=out, resume=True, progress_bar=False, hyperparameters=SMALL)


@pytest.mark.slow
def test_ctrl_c_saves_model_config_and_curve(tmp_path, monkeypatch, capsys):
    original = train_module.TrainingCurve._on_step

    def interrupt_late(self):
        if self.num_timesteps >= 200:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(train_module.TrainingCurve, "_on_step", interrupt_late)
    out = tmp_path / "r"
    code = main(["train", "--scenario", "tiny", "--timesteps", "100000", "--out", str(out), "--no-progress"])
    assert code == 130
    assert "interrupted at" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["interrupted"] is True and 200 <= cfg["total_timesteps"] < 100000
    with zipfile.ZipFile(out / "model.zip") as zf:
        assert "data" in zf.namelist()
    assert curve_rows(out)


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.zip"
    target.write_bytes(b"old")

    class Breaks:
        def save(self, path):
            with open(path, "wb") as fh:
                fh.write(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_atomically(Breaks(), target)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.zip"]


def test_output_paths_are_checked_before_the_work(tmp_path, capsys):
    (tmp_path / "a" / "model.zip").mkdir(parents=True)
    with pytest.raises(XnetError, match=r"model.zip is a folder where the file model.zip goes"):
        run(tmp_path / "a")
    (tmp_path / "b" / "training_curve.csv").mkdir(parents=True)
    with pytest.raises(XnetError, match=r"training_curve.csv is a folder"):
        run(tmp_path / "b")
    (tmp_path / "file").write_text("x")
    assert main(["train", "--scenario", "tiny", "--out", str(tmp_path / "file" / "run")]) == 2
    assert "xnet-gym: error: --out = " in capsys.readouterr().err
    # A run that fails leaves no empty folder behind.
    with pytest.raises(XnetError):
        train(EXPERT, "tiny", "maskable_ppo", 256, out=tmp_path / "c", env_kwargs={"expert_order": "alphabetical"},
              progress_bar=False)
    assert not (tmp_path / "c").exists()
