import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import xnet_gym  # noqa: F401  (registers the ids)
from xnet_gym.analytic import analytic_placement
from xnet_gym.envs import scoring
from xnet_gym.envs.observation import normalised_cost
from xnet_gym.envs.reward import INVALID_ACTION_PENALTY
from xnet_gym.errors import ScenarioError, XnetError
from xnet_gym.placement import Placement

EXPERT = "xnet_gym/ExpertPlacement-v0"
MODEL = "xnet_gym/ModelPlacement-v0"


def play(env, policy, seed=None, options=None):
    obs, info = env.reset(seed=seed, options=options)
    total, steps, done, infos = 0.0, 0, False, []
    while not done:
        obs, r, term, trunc, info = env.step(policy(env, obs))
        assert isinstance(r, float) and isinstance(term, bool) and isinstance(trunc, bool)
        assert not trunc
        total += r
        steps += 1
        done = term
        infos.append(info)
    return total, steps, infos


def analytic(env, obs):
    return env.unwrapped.analytic_action()


def masked_random(rng):
    def policy(env, obs):
        mask = env.unwrapped.action_masks()
        assert mask.any()
        np.testing.assert_array_equal(mask, obs["action_mask"].astype(bool))
        return int(rng.choice(np.flatnonzero(mask)))
    return policy


@pytest.mark.parametrize("env_id,kwargs", [
    (EXPERT, {"scenario": "paper", "train_time_steps": 16}),
    (EXPERT, {"scenario": "tiny", "reward": "sparse", "expert_order": "random"}),
    (MODEL, {"scenario": "tiny"}),
    (MODEL, {"scenario": "paper", "train_time_steps": 8, "tokens": 500}),
])
def test_env_checkers(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    env.close()


@pytest.mark.parametrize("reward", ["dense", "sparse"])
@pytest.mark.parametrize("objective", ["max", "weighted"])
@pytest.mark.parametrize("scenario,kwargs", [
    ("paper", {"train_time_steps": 20}),
    ("paper", {"train_time_steps": 16}),
    ("paper", {}),
    ("deepseek-esft-packed", {"train_time_steps": 7, "time_steps": 12, "tokens": 400}),
])
def test_analytic_policy_scores_minus_one_and_equals_sort_match(reward, objective, scenario, kwargs):
    """Exactly -1.0, also for episodes deep in a generator block (only the first is seeded):
    the reference is scored for a whole block at once, the episode on its own."""
    env = gym.make(EXPERT, scenario=scenario, reward=reward, objective=objective, **kwargs)
    E = env.unwrapped.generator.base.n_experts
    for i in range(9):
        total, steps, infos = play(env, analytic, seed=i if i % 3 == 0 else None)
        ep = env.unwrapped.problem
        assert total == -1.0                 # exactly: dense rewards sit on a 2^-40 grid
        assert steps == E
        layer = int(ep.rows.layers[0])
        core = analytic_placement(ep.instance)
        np.testing.assert_array_equal(env.unwrapped.placement.experts[layer], core.experts[layer])
        assert infos[-1]["ratio_to_analytic"] == 1.0
        assert not any(i["invalid_action"] for i in infos)


def test_model_env_analytic_return_and_placement():
    env = gym.make(MODEL, scenario="paper", train_time_steps=10, expert_order="frequency")
    total, steps, infos = play(env, analytic, seed=3)
    assert steps == 32 * 8
    assert total == -1.0
    ep = env.unwrapped.problem
    assert env.unwrapped.placement == analytic_placement(ep.instance)
    assert infos[-1]["latency_s"] == pytest.approx(infos[-1]["analytic_latency_s"], rel=1e-15)


def test_random_policy_never_beats_analytic_under_weighted():
    env = gym.make(EXPERT, scenario="paper", objective="weighted", train_time_steps=12)
    rng = np.random.default_rng(0)
    returns = [play(env, masked_random(rng), seed=s)[0] for s in range(150)]
    assert max(returns) <= -1.0 + 1e-12
    assert np.mean(returns) < -1.2       # and it is clearly worse on average
    model = gym.make(MODEL, scenario="tiny", objective="weighted")
    returns = [play(model, masked_random(rng), seed=s)[0] for s in range(60)]
    assert max(returns) <= -1.0 + 1e-12


def test_same_seed_same_episode():
    def trace(seed):
        env = gym.make(EXPERT, scenario="paper", train_time_steps=16)
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        done = False
        while not done:
            obs, r, done, _, info = env.step(env.action_space.sample())
            out.append((obs, r, info["invalid_action"]))
        out.append(info["latency_s"])
        return out

    a, b, c = trace(5), trace(5), trace(6)
    assert repr(a) == repr(b)
    assert repr(a) != repr(c)


def test_same_seed_same_episode_sequence():
    """Episodes come from blocks drawn from np_random; a seeded reset drops the block."""
    def layers_and_refs(env, n, seed):
        out = []
        for i in range(n):
            env.reset(seed=seed if i == 0 else None)
            ep = env.unwrapped.problem
            rows = ep.rows
            out.append((int(rows.layers[0]), ep.reference_s, rows.probabilities.tobytes(), rows.cost_s.tobytes()))
        return out

    env = gym.make(EXPERT, scenario="paper", train_time_steps=16)
    first = layers_and_refs(env, 70, 3)          # crosses a block boundary (64)
    again = layers_and_refs(env, 5, 3)           # reseeded mid-block
    other = layers_and_refs(gym.make(EXPERT, scenario="paper", train_time_steps=16), 70, 3)
    assert first == other
    assert again == first[:5]
    assert len({r for _, r, _, _ in first}) == 70  # every episode is a fresh draw


def test_episode_lengths():
    env = gym.make(EXPERT, scenario="tiny")
    assert play(env, masked_random(np.random.default_rng(0)), seed=0)[1] == 4
    env = gym.make(MODEL, scenario="tiny")
    assert play(env, masked_random(np.random.default_rng(0)), seed=0)[1] == 3 * 4


def test_invalid_action_goes_to_cheapest_free_and_is_penalised():
    env = gym.make(EXPERT, scenario="tiny", layer=1, reward="sparse")
    env.reset(seed=0)
    u = env.unwrapped
    ep = u.problem
    first = u.analytic_action()
    _, r, _, _, info = env.step(first)
    assert r == 0.0 and not info["invalid_action"]
    _, r, _, _, info = env.step(first)          # the same satellite is now full
    assert bool(info["invalid_action"])
    assert r == pytest.approx(-INVALID_ACTION_PENALTY)
    cost = np.where(np.arange(len(ep.rows.cost_s[0])) == first, np.inf, ep.rows.cost_s[0])
    assert u.assignment[0, ep.rows.order[0, 1]] == int(np.argmin(cost))
    total = r
    done = False
    while not done:
        _, r, done, _, info = env.step(first)   # keeps asking for the full satellite
        total += r
    assert info["invalid_actions"] == 3
    assert total == pytest.approx(-info["ratio_to_analytic"] - 3 * INVALID_ACTION_PENALTY, abs=1e-12)


def test_padded_action_is_invalid_not_an_error():
    env = gym.make(EXPERT, scenario="kuiper-630", layer=5, train_time_steps=4, time_steps=20)
    obs, _ = env.reset(seed=0)
    n = int(obs["action_mask"].sum())
    assert n < env.action_space.n       # layer 5's subnet is smaller than the largest
    _, _, _, _, info = env.step(env.action_space.n - 1)
    assert bool(info["invalid_action"])


def test_bad_kwargs_and_actions():
    with pytest.raises(ScenarioError, match=r"scenario = 'nowhere'"):
        gym.make(EXPERT, scenario="nowhere")
    with pytest.raises(ScenarioError, match=r"layer = 3: must be an integer \[0, 2\]"):
        gym.make(EXPERT, scenario="tiny", layer=3)
    with pytest.raises(ScenarioError, match=r"expert_order = 'alphabetical': allowed: index, frequency, random"):
        gym.make(EXPERT, scenario="tiny", expert_order="alphabetical")
    with pytest.raises(ScenarioError, match=r"train_time_steps = 0"):
        gym.make(EXPERT, scenario="tiny", train_time_steps=0)
    with pytest.raises(XnetError, match=r"reward = 'shaped'"):
        gym.make(EXPERT, scenario="tiny", reward="shaped")
    env = gym.make(EXPERT, scenario="tiny")
    env.reset(seed=0)
    with pytest.raises(XnetError, match=r"action = 99: must be an integer in \[0, 4\]"):
        env.unwrapped.step(99)
    with pytest.raises(XnetError, match=r"action = 1.5"):
        env.unwrapped.step(1.5)
    with pytest.raises(ScenarioError, match=r"options\['layer'\] = 7"):
        env.reset(options={"layer": 7})


def test_reset_options_pin_layer_and_trace():
    from xnet_gym.activation import zipf_trace

    env = gym.make(EXPERT, scenario="tiny")
    trace = zipf_trace(3, 4, 2, 64, 1.0, np.random.default_rng(3))
    env.reset(seed=0, options={"layer": 2, "trace": trace})
    ep = env.unwrapped.problem
    assert ep.rows.layers.tolist() == [2]
    np.testing.assert_array_equal(ep.rows.probabilities[0], trace.probabilities()[2])


def test_frequency_order_places_most_active_first():
    env = gym.make(EXPERT, scenario="paper", expert_order="frequency", train_time_steps=4)
    obs, _ = env.reset(seed=1)
    ep = env.unwrapped.problem
    p = ep.rows.probabilities[0][ep.rows.order[0]]
    assert np.all(np.diff(p) <= 0)
    assert obs["expert"][1] == 0.0      # rank of the first expert: the most active


def test_vectorised_envs():
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    for mode in ("sync", "async"):
        venv = gym.make_vec(EXPERT, num_envs=2, vectorization_mode=mode, scenario="tiny")
        obs, _ = venv.reset(seed=0)
        assert obs["action_mask"].shape == (2, 5)
        obs, r, _term, _trunc, _ = venv.step(np.array([0, 1]))
        assert r.shape == (2,)
        venv.close()
    for cls in (DummyVecEnv, SubprocVecEnv):
        # A subprocess started by forkserver has not imported xnet_gym: the "module:" prefix
        # makes gymnasium import it (and so register the ids) first.
        venv = make_vec_env("xnet_gym:" + EXPERT, n_envs=2, vec_env_cls=cls, env_kwargs={"scenario": "tiny"}, seed=0)
        venv.reset()
        masks = get_action_masks(venv)
        assert masks.shape == (2, 5) and masks.dtype == bool and masks.all()
        venv.step(np.array([0, 0]))
        assert get_action_masks(venv).sum() == 2 * 4
        venv.close()


def test_render_modes():
    env = gym.make(EXPERT, scenario="tiny", render_mode="ansi", layer=0)
    env.reset(seed=0)
    first = env.unwrapped.analytic_action()
    chosen = int(env.unwrapped.problem.rows.candidates[0, first])
    env.step(first)
    text = env.render()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].startswith("layer 0: gateway 7 (G), next gateway 9")
    assert lines[1].startswith("placing expert 1 (p = ")
    grid = [line for line in lines if line[:5].strip().isdigit()]
    assert len(grid) == 3                                        # tiny: 3 planes
    cells = "".join(row.split("|", 1)[1] for row in grid)
    assert cells.count(" G") == 1 and cells.count("[0]") == 1    # expert 0 on the chosen satellite, marked
    assert sum(cells.count(f" {c}") for c in ".:-=+*#%") == 4     # 5 candidates, 1 taken
    con = env.unwrapped.problem.instance.constellation
    assert grid[int(con.plane[chosen])].count("[0]") == 1
    env = gym.make(EXPERT, scenario="tiny", render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8 and img.std() > 0
    env.close()


@pytest.mark.parametrize("objective", ["max", "weighted"])
@pytest.mark.parametrize("scenario", ["paper", "deepseek-esft-packed"])
def test_episode_scoring_equals_the_evaluator(objective, scenario):
    """The env scores from per-slot leg tables; they must give the evaluator's exact value."""
    from xnet_gym.latency import evaluate_stages

    kw = {"time_steps": 6, "tokens": 300} if scenario != "paper" else {}
    env = gym.make(EXPERT, scenario=scenario, objective=objective, train_time_steps=5, **kw)
    rng = np.random.default_rng(2)
    for seed in range(4):
        _total, _, infos = play(env, masked_random(rng), seed=seed)
        ep = env.unwrapped.problem
        layer = int(ep.rows.layers[0])
        placement = env.unwrapped.placement
        direct = evaluate_stages(ep.instance, placement, [layer]).stage_s[0]
        assert infos[-1]["latency_s"] == pytest.approx(direct, rel=1e-12)
        ref = evaluate_stages(ep.instance, ep.reference, [layer]).stage_s[0]
        assert infos[-1]["analytic_latency_s"] == pytest.approx(ref, rel=1e-12)
        assert len(ep.instance.time_steps) == 5


@pytest.mark.parametrize("scenario,kwargs", [
    ("paper", {"train_time_steps": 4}),
    ("deepseek-esft-packed", {"train_time_steps": 3, "time_steps": 6, "tokens": 300}),
])
def test_marginal_observation_matches_its_definition(scenario, kwargs):
    """candidate_marginal[c] = E[max(cost_norm[c], worst cost_norm of the co-active experts
    already placed) | the current expert is active], read literally from the active sets."""
    env = gym.make(EXPERT, scenario=scenario, **kwargs)
    rng = np.random.default_rng(4)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        ep = env.unwrapped.problem
        sets, weights = ep.rows.sets[0], ep.rows.counts[0] / ep.rows.counts[0].sum()
        cn = normalised_cost(ep.rows)[0].astype(float)
        placed = {}                                   # expert -> candidate index
        for j in range(ep.spec.n_experts):
            e = int(ep.rows.order[0, j])
            rows = [r for r in range(len(sets)) if e in sets[r] and weights[r] > 0]
            if rows:
                want = np.zeros_like(cn)
                for r in rows:
                    worst = max([cn[placed[f]] for f in sets[r] if f in placed], default=0.0)
                    want += weights[r] * np.maximum(cn, worst)
                want /= sum(weights[r] for r in rows)
            else:
                want = cn
            np.testing.assert_allclose(obs["candidate_marginal"], np.minimum(want, 1.0), rtol=2e-6, atol=2e-7)
            a = int(rng.choice(np.flatnonzero(obs["action_mask"])))
            placed[e] = a
            obs, *_ = env.step(a)


@pytest.mark.parametrize("env_id", [EXPERT, MODEL])
@pytest.mark.parametrize("variant", ["random-gateway", "clustered", "fixed-activation", "gumbel"])
def test_every_generator_path_scores_through_the_evaluator(env_id, variant, tmp_path):
    """Each way of drawing an episode: the analytic policy scores exactly -1.0, its placement
    is the core's sort-match for the episode's instance and gateways, and the env's latency is
    the evaluator's for that instance."""
    from xnet_gym.latency import evaluate, evaluate_stages
    from xnet_gym.scenario import PRESET_DIR

    text = (PRESET_DIR / "tiny.toml").read_text()
    kwargs = {}
    if variant == "random-gateway":
        kwargs["layer_strategy"] = "random-gateway"
    elif variant == "fixed-activation":
        kwargs["randomize_activation"] = False
    else:
        if variant == "clustered":
            text = text.replace('source = "zipf"', 'source = "clustered"\nclusters = 3\ncoactivation_strength = 0.8')
        else:   # 12 experts, top-6: too many sets to enumerate, so Gumbel top-k traces
            text = text.replace('preset = "tiny"', 'preset = "tiny"\nexperts = 12\ntop_k = 6')
            text += "\n[placement]\nexperts_per_satellite = 3\n"
        path = tmp_path / f"{variant}.toml"
        path.write_text(text)
        kwargs["scenario"] = str(path)
    env = gym.make(env_id, **{"scenario": "tiny", **kwargs})
    for i in range(4):
        total, _, infos = play(env, analytic, seed=11 if i == 0 else None)
        ep = env.unwrapped.problem
        placement = env.unwrapped.placement
        assert infos[-1]["ratio_to_analytic"] == 1.0 and total == -1.0
        core = analytic_placement(ep.instance, placement.gateways)
        np.testing.assert_array_equal(placement.experts[ep.rows.layers], core.experts[ep.rows.layers])
        if ep.scope == "token":
            direct = evaluate(ep.instance, placement).latency_s
        else:
            direct = evaluate_stages(ep.instance, placement, ep.rows.layers).stage_s[0]
        assert infos[-1]["latency_s"] == pytest.approx(direct, rel=1e-12)


def test_objective_of_any_placement_is_the_evaluators():
    """objective_s takes any placement: off the episode's candidates it still scores exactly."""
    from xnet_gym.latency import evaluate_stages

    env = gym.make(EXPERT, scenario="paper", train_time_steps=6)
    env.reset(seed=1)
    u = env.unwrapped
    ep = u.problem
    layer = int(ep.rows.layers[0])
    experts = ep.reference.experts.copy()
    outside = np.setdiff1d(np.arange(u.generator.base.n_satellites), ep.rows.candidates[0])
    outside = outside[outside != ep.reference.gateways[layer]]
    experts[layer, 0] = outside[0]                      # same gateways, one expert off the subnet
    moved = Placement(ep.reference.gateways, experts)
    direct = evaluate_stages(ep.instance, moved, [layer]).stage_s[0]
    assert scoring.objective_s(ep, moved) == pytest.approx(direct, rel=1e-12)
    assert scoring.objective_s(ep, ep.reference) == ep.reference_s


@pytest.mark.parametrize("env_id,kwargs", [
    (EXPERT, {"scenario": "paper", "objective": "weighted", "train_time_steps": 16}),
    (EXPERT, {"scenario": "paper", "train_time_steps": 16}),
    (MODEL, {"scenario": "paper", "train_time_steps": 8, "tokens": 500}),
    (MODEL, {"scenario": "tiny", "objective": "weighted"}),
])
def test_analytic_return_is_exactly_minus_one_summed_in_any_order(env_id, kwargs):
    """Dense rewards sit on a 2^-40 grid: sequential sums, NumPy's pairwise sum and the
    reverse order all give exactly -1.0 for the closed form (it was -0.9999999999999999 on
    some ModelPlacement and weighted episodes)."""
    env = gym.make(env_id, **kwargs)
    for seed in range(25 if env_id == EXPERT else 6):
        rewards = []
        env.reset(seed=seed)
        done = False
        while not done:
            _, r, done, _, _ = env.step(env.unwrapped.analytic_action())
            rewards.append(r)
        total = 0.0
        for r in rewards:
            total += r
        assert total == -1.0 and float(np.sum(rewards)) == -1.0 and sum(reversed(rewards)) == -1.0
