"""`xnet-gym sweep` on an embedded Ray: a real grid, trained and evaluated, then resumed."""

import json
from pathlib import Path

import pytest

pytest.importorskip("ray.tune")

from xnet_gym.agents.sweep import Trial, grid, read_trials_csv, run_trial, summarise, summary_markdown
from xnet_gym.agents.train import train
from xnet_gym.cli import main
from xnet_gym.errors import XnetError

PNG = b"\x89PNG\r\n\x1a\n"


def test_sweep_on_tiny_two_seeds_two_objectives_then_resume(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", "--scenarios", "tiny", "--objectives", "max", "weighted", "--seeds", "0", "1",
            "--timesteps", "2048", "--episodes", "20", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "4 trials on an embedded local Ray" in text
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 1 + 4
    summary = [line.split(",") for line in (out / "summary.csv").read_text().splitlines()]
    header, body = summary[0], summary[1:]
    assert len(body) == 2 and all(r[header.index("seeds")] == "2" for r in body)
    evaluations = {p.parent.name: json.loads(p.read_text()) for p in out.glob("trials/*/evaluation.json")}
    assert len(evaluations) == 4
    for name, metrics in evaluations.items():
        assert 0.9 < metrics["geomean_ratio_to_analytic"] < 2.0
        if "weighted" in name:             # the closed form is optimal under `weighted`: nothing beats it
            assert metrics["best_ratio"] >= 1.0 - 1e-9
        assert metrics["total_timesteps"] >= 2048
    assert (out / "summary.png").read_bytes()[:8] == PNG
    # The committed README sweep is redrawn from its trials.csv: the file reads back to the same summary.
    again = summarise(read_trials_csv(out / "trials.csv"))
    assert summary_markdown(again) + "\n" == (out / "summary.md").read_text()
    assert "| tiny | max | maskable_ppo | mlp | 2048 | 2 |" in (out / "summary.md").read_text()

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/model.zip")}
    assert main([*args, "--resume"]) == 0                      # finished trials are reported, not retrained
    assert {p: p.stat().st_mtime_ns for p in out.glob("trials/*/model.zip")} == stamps
    assert len((out / "trials.csv").read_text().splitlines()) == 5
    capsys.readouterr()
    assert main(args) == 2
    assert "already holds a sweep; add --resume" in capsys.readouterr().err
    assert main([*args[:-4], "--seeds", "0", "--episodes", "20", "--out", str(out), "--resume"]) == 2
    assert "was started with another grid" in capsys.readouterr().err


def test_an_interrupted_trial_resumes_from_its_newest_checkpoint(tmp_path):
    (trial,) = grid(["tiny"], ["max"], [3], timesteps=[4096], episodes=10)
    run = tmp_path / "trials" / trial.name
    # What a killed trial leaves: checkpoints from a shorter run, no final model or evaluation.
    train("xnet_gym/ExpertPlacement-v0", "tiny", "maskable_ppo", 2048, 3, run, env_kwargs={"objective": "max"},
          progress_bar=False, hyperparameters={"encoder": "mlp", "vec": "dummy"})
    (run / "model.zip").unlink()
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "interrupted": True}))
    metrics = run_trial(trial, tmp_path)
    config = json.loads((run / "config.json").read_text())
    assert Path(config["resumed_from"]).name.startswith("model_") and "checkpoints" in config["resumed_from"]
    assert config["total_timesteps"] >= 4096 and not config["interrupted"]
    assert metrics["geomean_ratio_to_analytic"] >= 1.0 - 0.2
    assert run_trial(trial, tmp_path) == metrics                 # a finished trial is read back, not rerun


def test_grid_checks_every_flag():
    assert len(grid(["tiny", "paper:train_time_steps=8"], ["max"], [0, 1], encoders=["mlp", "attention"])) == 8
    assert isinstance(grid(["tiny"], ["max"], [0])[0], Trial)
    with pytest.raises(XnetError, match="--scenarios override = 'token=5'"):
        grid(["tiny:token=5"], ["max"], [0])
    with pytest.raises(XnetError, match="--objectives = 'min'"):
        grid(["tiny"], ["min"], [0])
    with pytest.raises(XnetError, match="--seeds = \\[\\]"):
        grid(["tiny"], ["max"], [])
    with pytest.raises(XnetError, match="--vec = 'batched'"):
        grid(["tiny"], ["max"], [0], algos=["ppo"], vec="batched")       # refused before Ray starts
    with pytest.raises(XnetError, match="--imitate"):
        grid(["tiny"], ["max"], [0], algos=["ppo"], imitate="analytic")


def test_without_ray_the_command_says_how_to_install(monkeypatch, capsys):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("ray") else real(name, *a))
    assert main(["sweep", "--scenarios", "tiny", "--out", "/nonexistent/never"]) == 2
    assert 'pip install "xnet-gym[scale]"' in capsys.readouterr().err
