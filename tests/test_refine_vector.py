"""`ExpertRefine-v0`'s batched vector env: the single env's core over N episodes."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import xnet_gym  # noqa: F401
from xnet_gym.errors import ActionError, ScenarioError

REFINE = "xnet_gym/ExpertRefine-v0"
KW = {"scenario": "deepseek-esft-packed", "tokens": 128, "train_time_steps": 4, "gain_observation": True,
      "max_moves": 5}


def make(n, **extra):
    return gym.make_vec(REFINE, num_envs=n, vectorization_mode="vector_entry_point", **{**KW, **extra})


def test_each_sub_env_plays_the_single_envs_episode_bit_for_bit():
    """Sub-env i's first episode is the single env's i-th after the same seed, and the same
    actions give the same observations, rewards, flags and info, step by step."""
    venv = make(3, start="random")
    obs, _ = venv.reset(seed=5)
    rng = np.random.default_rng(0)
    trace = {i: [] for i in range(3)}
    for _ in range(7):
        masks = venv.unwrapped.action_masks()
        greedy = venv.unwrapped.greedy_actions()
        acts = np.array([g if rng.random() < 0.5 else rng.choice(np.flatnonzero(m)) for g, m in zip(greedy, masks)])
        nxt, reward, term, _, info = venv.step(acts)
        for i in range(3):
            trace[i].append((acts[i], {k: v[i] for k, v in nxt.items()}, reward[i], term[i],
                             info["ratio_to_analytic"][i]))
        if term.any():
            break
    single = gym.make(REFINE, start="random", **KW)
    firsts = [single.reset(seed=5)[0]] + [single.reset()[0] for _ in range(2)]
    for i in range(3):
        for key, value in firsts[i].items():
            np.testing.assert_array_equal(obs[key][i], value, err_msg=key)
    for i in range(3):
        single.reset(seed=5)
        for _ in range(i):
            single.reset()
        for action, sub_obs, reward, term, ratio in trace[i]:
            one, r, t, _, one_info = single.step(int(action))
            assert r == reward and t == term and one_info["ratio_to_analytic"] == ratio
            for key, value in one.items():
                np.testing.assert_array_equal(sub_obs[key], value, err_msg=key)


def test_greedy_play_reaches_steepest_descent_on_every_sub_env():
    from xnet_gym import baselines
    from xnet_gym.envs import scoring

    venv = make(4, max_moves=200)
    venv.reset(seed=11)
    u = venv.unwrapped
    problems = [ep.problem for ep in u._eps]
    done = np.zeros(4, dtype=bool)
    best = [None] * 4
    while not done.all():
        _, _, term, _, _ = venv.step(u.greedy_actions())
        for i in np.flatnonzero(term & ~done):
            best[i] = u.placement(i)
        done |= term
    for problem, placement in zip(problems, best):
        layer = int(problem.batch.layers[problem.first])
        alone = baselines.for_layer("steepest-descent", layer, 0, None).solve(problem.instance)
        assert scoring.objective_s(problem, placement) == scoring.objective_s(problem, alone)
        assert scoring.objective_s(problem, placement) < problem.reference_s


def test_same_step_autoreset_hands_over_the_final_observation():
    venv = make(3, autoreset_mode="same_step", max_moves=2)
    venv.reset(seed=1)
    stop = venv.unwrapped._core.stop_action
    obs, _, term, _, info = venv.step(np.array([stop, 0, stop]))
    assert term.tolist() == [True, False, True]
    assert info["_final_obs"].tolist() == [True, False, True]
    assert set(info["final_obs"][0]) == set(obs)
    assert info["final_info"]["ratio_to_analytic"][0] == 1.0            # stopped on the closed form
    assert obs["progress"][0, 0] == 1.0 and obs["progress"][2, 0] == 1.0       # fresh episodes, all moves left
    assert venv.observation_space.contains(obs)


def test_next_step_autoreset_ignores_the_action_after_the_end():
    venv = make(2)
    venv.reset(seed=2)
    stop = venv.unwrapped._core.stop_action
    _, _, term, _, _ = venv.step(np.array([stop, stop]))
    assert term.all()
    _, reward, term, _, info = venv.step(np.array([0, 1]))
    assert not term.any() and (reward == 0.0).all() and (info["moves_left"] == KW["max_moves"]).all()


def test_bad_input_is_refused_at_the_boundary():
    venv = make(2)
    with pytest.raises(ActionError, match="before reset"):
        venv.step(np.array([0, 0]))
    venv.reset(seed=0)
    with pytest.raises(ActionError, match=r"actions: shape \(1,\); expected \(2,\)"):
        venv.step(np.array([0]))
    n = venv.unwrapped.single_action_space.n
    with pytest.raises(ActionError, match=rf"actions\[1\] = 1000000000: must be an integer in \[0, {n - 1}\]"):
        venv.step(np.array([0, 10 ** 9]))
    with pytest.raises(ScenarioError, match=r"reset options = \['layer'\]: none are taken"):
        venv.reset(options={"layer": 1})
    with pytest.raises(ScenarioError, match="num_envs = 0"):
        make(0)
    with pytest.raises(ScenarioError, match="autoreset_mode = 'disabled'"):
        make(2, autoreset_mode="disabled")


def test_training_on_the_batched_refinement_env_imitates_steepest_descent(tmp_path):
    """`--vec batched` on ExpertRefine-v0: the demonstrations come from every sub-env's
    neighbourhood scored in one batched call; the clone plays steepest descent."""
    from xnet_gym.agents.evaluate import evaluate_player, make_player
    from xnet_gym.agents.train import train

    kwargs = {"gain_observation": True}
    out = train(REFINE, "tiny", timesteps=0, out=tmp_path / "bc", imitate="greedy", imitation_steps=3000,
                progress_bar=False, env_kwargs=kwargs, hyperparameters={"vec": "batched"})
    config = json.loads((out / "config.json").read_text())
    assert config["hyperparameters"]["vec"] == "batched" and config["imitation"]["agreement"] > 0.99
    learned = evaluate_player(make_player(str(out / "model.zip")), REFINE, {"scenario": "tiny", **kwargs}, 20, seed=3)
    greedy = evaluate_player(make_player("greedy"), REFINE, {"scenario": "tiny", **kwargs}, 20, seed=3)
    assert learned["geomean_ratio_to_analytic"] == pytest.approx(greedy["geomean_ratio_to_analytic"], abs=1e-9)
    assert greedy["geomean_ratio_to_analytic"] < 0.999
