"""The batched vector env of ExpertPlacement-v0 against the single env and the evaluator.

Oracles: the single env (drawing blocks of the same size, it must hand out the same episodes
and the same returns bit for bit, and the same observations), the one evaluator
(`evaluate_stages` on each sub-env's own instance), and Gymnasium's own vector wrappers.
"""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest

import xnet_gym  # noqa: F401
from xnet_gym import ActionError, ScenarioError
from xnet_gym.activation import ActivationTrace, batched_active_sets
from xnet_gym.envs import ExpertPlacementVectorEnv, PlacementGenerator, ReplayProblem
from xnet_gym.latency import evaluate_stages

ENV_ID = "xnet_gym/ExpertPlacement-v0"
PAPER = {"scenario": "paper", "train_time_steps": 16}


def make(num_envs, **kw):
    return gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", **kw)


def same_observation(a, b, key):
    """Bit for bit, but for the marginal's float32 weighted sum (its summation order differs)."""
    if key == "candidate_marginal":
        return np.allclose(a, b, rtol=0, atol=2e-7)
    return np.array_equal(a, b)


def run_batch(venv, obs, actions):
    """One batch of lockstep episodes from its first observation; returns (returns,
    observations per step, last info)."""
    seen, total = [obs], np.zeros(venv.num_envs)
    E = len(actions)
    for t in range(E):
        obs, reward, term, trunc, info = venv.step(actions[t])
        total += reward
        seen.append(obs)
        assert term.all() == (t == E - 1) and not trunc.any()
    return total, seen, info


@pytest.mark.parametrize("kwargs", [
    {**PAPER},
    {**PAPER, "expert_order": "random"},
    {"scenario": "tiny", "expert_order": "frequency", "reward": "sparse"},
])
def test_batches_are_the_single_envs_blocks_bit_for_bit(kwargs):
    N = 64
    venv = make(N, **kwargs)
    v_first, _ = venv.reset(seed=11)
    single_kw = {k: v for k, v in kwargs.items() if k not in ("scenario", "reward")}
    env = gym.make(ENV_ID, reward=kwargs.get("reward", "dense"),
                   generator=PlacementGenerator(kwargs["scenario"], scope="stage", block_size=N, **single_kw))
    obs, _ = env.reset(seed=11)
    C, E = venv.unwrapped.spec_.n_candidates_max, venv.unwrapped.spec_.n_experts
    rng = np.random.default_rng(0)
    for batch in range(2):                     # the second batch is the single env's second block
        actions = rng.integers(C, size=(E, N))
        v_ret, v_obs, _ = run_batch(venv, v_first, actions)
        for i in range(N):
            ret = 0.0
            for t in range(E):
                for key, value in obs.items():
                    assert same_observation(v_obs[t][key][i], value, key), (batch, i, t, key)
                obs, reward, *_ = env.step(int(actions[t, i]))
                ret += reward
            for key, value in obs.items():
                assert same_observation(v_obs[E][key][i], value, key), (batch, i, "terminal", key)
            assert v_ret[i] == ret                                       # the same bits
            obs, _ = env.reset()
        v_first, *_ = venv.step(np.zeros(N, dtype=np.int64))          # next-step autoreset: the next batch


def tiny_variant(tmp_path, variant: str) -> str:
    """tiny with clustered routing, or with 12 experts top-6 (too many sets to enumerate: the
    generator draws token-level traces), as a scenario file."""
    from xnet_gym.scenario import PRESET_DIR
    text = (PRESET_DIR / "tiny.toml").read_text()
    if variant == "clustered":
        text = text.replace('source = "zipf"', 'source = "clustered"\nclusters = 3\ncoactivation_strength = 0.8')
    else:
        text = text.replace('preset = "tiny"', 'preset = "tiny"\nexperts = 12\ntop_k = 6')
        text += "\n[placement]\nexperts_per_satellite = 3\n"
    path = tmp_path / f"{variant}.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("scenario,kw", [("paper", {"train_time_steps": 16}), ("tiny", {"objective": "weighted"}),
                                         ("deepseek-esft", {"tokens": 512, "train_time_steps": 8}),
                                         ("deepseek-esft-packed", {"tokens": 256, "train_time_steps": 4}),
                                         ("deepseek-esft", {"tokens": 256, "randomize_activation": False}),
                                         ("tiny", {"randomize_activation": False}),
                                         ("clustered", {}), ("gumbel", {})])
def test_analytic_is_exactly_minus_one_and_random_returns_equal_the_evaluator(scenario, kw, tmp_path):
    """Every way the generator draws a batch (exact zipf sets, trace windows, the scenario's
    own profile, clustered and Gumbel top-k token draws)."""
    N = 16
    if scenario in ("clustered", "gumbel"):
        scenario = tiny_variant(tmp_path, scenario)
    venv = make(N, scenario=scenario, **kw).unwrapped
    venv.reset(seed=5)
    E = venv.spec_.n_experts
    ret = np.zeros(N)
    for _ in range(E):
        _, reward, term, _, _ = venv.step(venv.analytic_actions())
        ret += reward
    assert term.all()
    assert np.all(ret == -1.0)
    np.testing.assert_array_equal(venv.final_ratio, 1.0)

    venv.reset(seed=6)
    rng = np.random.default_rng(1)
    problems = [venv.problem(i) for i in range(N)]
    ret[:] = 0.0
    invalid = np.zeros(N)
    for _ in range(E):
        _, reward, term, _, info = venv.step(rng.integers(venv.spec_.n_candidates_max, size=N))
        ret += reward
        invalid += info["invalid_action"]
    for i, problem in enumerate(problems):
        layer = int(problem.rows.layers[0])
        instance = problem.instance
        latency = evaluate_stages(instance, venv.placement(i), [layer], split=False).stage_s[0]
        reference = evaluate_stages(instance, problem.reference, [layer], split=False).stage_s[0]
        assert ret[i] + 0.1 * invalid[i] == pytest.approx(-latency / reference, rel=1e-12, abs=1e-12)
        assert info["latency_s"][i] == pytest.approx(latency, rel=1e-12)


def test_episodes_follow_the_single_envs_distribution_on_a_trace_source():
    """Trace windows are drawn many at once (no per-episode stream to match): each row must
    still be exactly some window's profile, i.e. `batched_active_sets` equals the trace's own."""
    rng = np.random.default_rng(3)
    experts = np.stack([rng.permuted(np.tile(np.arange(64), (300, 1)), axis=1)[:, :6] for _ in range(5)])
    sets, counts = batched_active_sets(experts, 64)
    for i in range(5):
        own_sets, own_counts = ActivationTrace(experts[i:i + 1], 64).active_sets(0)
        m = len(own_counts)
        assert np.array_equal(sets[i, :m], own_sets) and np.array_equal(counts[i, :m], own_counts)
        assert not counts[i, m:].any() and (sets[i, m:] == own_sets[0]).all()
    venv = make(8, scenario="deepseek-esft", tokens=512).unwrapped
    venv.reset(seed=0)
    rows = venv._rows
    assert np.all(rows.counts.sum(axis=1) == 512)
    # Without randomize_activation every episode is the trace's first 256 tokens, as in the single env.
    fixed = make(4, scenario="deepseek-esft", tokens=256, randomize_activation=False).unwrapped
    fixed.reset(seed=0)
    window = fixed.generator.base.trace.window(0, 256)
    for i, layer in enumerate(fixed._rows.layers):
        own_sets, own_counts = window.active_sets(int(layer))
        assert np.array_equal(fixed._rows.counts[i, :len(own_counts)], own_counts)
        assert np.array_equal(fixed._rows.sets[i, :len(own_counts)], own_sets)


def test_next_step_autoreset_ignores_actions_and_same_step_hands_back_the_final_observation():
    N = 32
    nxt = make(N, **PAPER)
    same = make(N, **PAPER, autoreset_mode="same_step")
    assert nxt.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    assert same.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    nxt.reset(seed=2)
    same.reset(seed=2)
    E = nxt.unwrapped.spec_.n_experts
    for _t in range(E):
        a = nxt.unwrapped.analytic_actions()
        o1, r1, term1, _, i1 = nxt.step(a)
        o2, r2, term2, _, i2 = same.step(a)
        assert np.array_equal(r1, r2) and np.array_equal(term1, term2)
    assert term1.all()
    for i in (0, N - 1):
        for key in o1:
            assert np.array_equal(i2["final_obs"][i][key], o1[key][i])
    assert np.array_equal(i2["final_info"]["ratio_to_analytic"], i1["ratio_to_analytic"])
    assert i2["_final_obs"].all() and i2["step_in_layer"].max() == 0         # top-level: the reset's info
    # next-step: the actions of the step after the end are ignored (out of range would raise)
    o3, r3, term3, trunc3, i3 = nxt.step(np.zeros(N, dtype=np.int64))
    assert not term3.any() and not trunc3.any() and not r3.any() and i3["step_in_layer"].max() == 0
    for key in o3:                                  # both hand out the next batch's first observation
        assert np.array_equal(o3[key], o2[key])


def test_gymnasiums_vector_episode_statistics_see_the_returns():
    from gymnasium.wrappers.vector import RecordEpisodeStatistics
    venv = RecordEpisodeStatistics(make(8, **PAPER))
    venv.reset(seed=0)
    E = venv.unwrapped.spec_.n_experts
    for _ in range(E):
        _, _, _, _, info = venv.step(venv.unwrapped.analytic_actions())
    np.testing.assert_array_equal(info["episode"]["r"], -1.0)
    np.testing.assert_array_equal(info["episode"]["l"], E)


def test_spaces_masks_and_info_follow_gymnasium_vector_conventions():
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # make_vec warns on missing autoreset metadata
        venv = gym.make_vec(ENV_ID, num_envs=4, **PAPER)           # the default mode is the vector entry point
    assert isinstance(venv.unwrapped, ExpertPlacementVectorEnv)
    obs, info = venv.reset(seed=0)
    assert venv.observation_space.contains(obs)
    assert venv.single_observation_space == gym.make(ENV_ID, **PAPER).observation_space
    masks = venv.unwrapped.action_masks()
    assert masks.shape == (4, venv.unwrapped.spec_.n_candidates_max) and masks.dtype == bool
    assert np.array_equal(masks, obs["action_mask"] > 0)
    for key in ("layer", "latency_s", "ratio_to_analytic", "invalid_action"):
        assert info[key].shape == (4,) and info["_" + key].all()
    obs, *_ = venv.step(venv.action_space.sample())
    assert venv.observation_space.contains(obs)
    for layout, keys in (("flat", {"observations", "action_mask"}), ("tianshou", {"obs", "mask"})):
        flat = make(4, **PAPER, obs_layout=layout)
        o, _ = flat.reset(seed=0)
        assert set(o) == keys and flat.observation_space.contains(o)
        single = gym.make(ENV_ID, **PAPER, obs_layout=layout)
        assert flat.single_observation_space == single.observation_space


def test_same_seed_same_bits_with_and_without_prefetch_and_through_pickle():
    def trace(venv, steps=30):
        obs, _ = venv.reset(seed=9)
        out = [obs["candidate_marginal"].copy()]
        rng = np.random.default_rng(4)
        for _ in range(steps):
            obs, r, *_ = venv.step(rng.integers(32, size=venv.num_envs))
            out += [obs["candidate_marginal"].copy(), r]
        return out
    a = trace(make(16, **PAPER))
    b = trace(make(16, **PAPER, prefetch=False))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    venv = make(16, **PAPER).unwrapped
    venv.reset(seed=1)
    venv.step(np.zeros(16, dtype=np.int64))
    clone = pickle.loads(pickle.dumps(venv))
    for _ in range(20):
        a_out, b_out = venv.step(np.ones(16, dtype=np.int64)), clone.step(np.ones(16, dtype=np.int64))
        assert np.array_equal(a_out[1], b_out[1])
        assert all(np.array_equal(a_out[0][k], b_out[0][k]) for k in a_out[0])
    venv.close()
    clone.close()


def test_bad_input_fails_at_the_boundary_naming_the_field():
    venv = make(4, **PAPER)
    with pytest.raises(ActionError, match="before reset"):
        venv.step(np.zeros(4, dtype=np.int64))
    venv.reset(seed=0)
    with pytest.raises(ActionError, match=r"shape \(3,\); expected \(4,\)"):
        venv.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ActionError, match=r"actions\[2\] = 32"):
        venv.step(np.array([0, 1, 32, 0]))
    with pytest.raises(ActionError, match=r"actions\[1\] = 0.5"):
        venv.step(np.array([0.0, 0.5, 1.0, 2.0]))
    with pytest.raises(ActionError, match="dtype bool"):
        venv.step(np.array([True, False, True, True]))
    with pytest.raises(ScenarioError, match="seed"):
        venv.reset(seed=[1, 2, 3, 4])
    with pytest.raises(ScenarioError, match="reset_mask"):
        venv.reset(options={"reset_mask": np.ones(4, dtype=bool)})
    with pytest.raises(ScenarioError, match="layer_strategy = 'random-gateway'"):
        make(4, **PAPER, layer_strategy="random-gateway")
    with pytest.raises(ScenarioError, match="autoreset_mode = 'disabled'"):
        make(4, **PAPER, autoreset_mode="disabled")
    with pytest.raises(ScenarioError, match="num_envs = 0"):
        ExpertPlacementVectorEnv(num_envs=0)


def test_a_pinned_layer_and_a_short_time_limit():
    venv = make(8, **PAPER, max_episode_steps=3)
    _obs, info = venv.reset(seed=0, options={"layer": 7})
    assert (info["layer"] == 7).all()
    for _t in range(3):
        _, _, term, trunc, info = venv.step(venv.unwrapped.analytic_actions())
    assert trunc.all() and not term.any() and not info["latency_s"].any()
    with pytest.raises(ActionError, match="a truncated one has no placement"):
        venv.unwrapped.placement(0)                  # 3 of 8 experts placed: nothing to score


def test_the_single_envs_v0_keywords_still_work_with_a_warning():
    with pytest.warns(DeprecationWarning, match="train_slots= is deprecated; use train_time_steps="):
        venv = ExpertPlacementVectorEnv(4, scenario="tiny", train_slots=2)
    assert venv.generator.train_time_steps == 2
    with pytest.raises(TypeError, match="unexpected keyword argument 'slot'"):
        ExpertPlacementVectorEnv(4, scenario="tiny", slot=2)


@pytest.mark.parametrize("scenario,kw", [("deepseek-esft", {"tokens": 512, "train_time_steps": 8}),
                                         ("deepseek-esft-packed", {"tokens": 256, "train_time_steps": 4})])
def test_every_sub_env_observes_what_the_single_env_observes_on_its_episode(scenario, kw):
    """Real traces, where the marginal goes through its sorted route (hundreds of sets per
    expert) and satellites hold several experts: sub-env i, replayed in the single env on
    the same episode with the same actions, sees the same observations and return."""
    N = 6
    venv = make(N, scenario=scenario, **kw).unwrapped
    obs, _ = venv.reset(seed=8)
    E, C = venv.spec_.n_experts, venv.spec_.n_candidates_max
    singles = [gym.make(ENV_ID, generator=ReplayProblem(venv.problem(i))) for i in range(N)]
    single_obs = [env.reset(seed=0)[0] for env in singles]
    rng = np.random.default_rng(2)
    returns, single_returns = np.zeros(N), np.zeros(N)
    for _ in range(E):
        for i in range(N):
            for key, value in single_obs[i].items():
                tol = 1e-6 if key == "candidate_marginal" else 0.0
                np.testing.assert_allclose(obs[key][i], value, rtol=0, atol=tol, err_msg=key)
        actions = rng.integers(C, size=N)
        obs, reward, term, _, _ = venv.step(actions)
        returns += reward
        for i, env in enumerate(singles):
            single_obs[i], r, *_ = env.step(int(actions[i]))
            single_returns[i] += r
    assert term.all()
    np.testing.assert_allclose(returns, single_returns, rtol=0, atol=1e-12)
