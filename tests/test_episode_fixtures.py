"""The envs against episodes recorded before they moved onto one batched core.

`tests/fixtures/episodes.json` was captured by `tests/fixtures/capture_episodes.py` at commit
61fc5d8 (the single ExpertPlacement, ModelPlacement and ExpertRefine envs, and the batched
ExpertPlacement env, each with its own code). The same seeds and actions must give the same
observations, rewards, info values, flags and final placements, bit for bit; only
`candidate_marginal`, a float32 weighted sum, may differ, within 1e-6.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def _capture_module():
    spec = importlib.util.spec_from_file_location("capture_episodes", FIXTURES / "capture_episodes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def replayed():
    return _capture_module().capture()


RECORDED = json.loads((FIXTURES / "episodes.json").read_text())
RECORDED_MARGINAL = dict(np.load(FIXTURES / "episodes_marginal.npz"))


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_envs_replay_the_recorded_episodes(replayed, name):
    now, marginals = replayed
    old_steps, new_steps = RECORDED[name]["steps"], now[name]["steps"]
    assert len(new_steps) == len(old_steps), name
    for t, (old, new) in enumerate(zip(old_steps, new_steps)):
        for key in old:
            if key == "marginal":
                continue
            assert new[key] == old[key], f"{name}: step {t}: {key} differs"
    if name in RECORDED_MARGINAL:
        np.testing.assert_allclose(marginals[name], RECORDED_MARGINAL[name], rtol=0, atol=1e-6)
