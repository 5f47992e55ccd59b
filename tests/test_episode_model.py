"""The episode model and the env's swappable parts: problems, generators, observation features,
public progress, and the layering rules of the package."""

import dataclasses
import pickle
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import xnet_gym
from xnet_gym.analytic import analytic_placement
from xnet_gym.envs import DEFAULT_FEATURES, Feature, ObservationBuilder, Problem, ProblemSpec
from xnet_gym.envs.expert_placement import ExpertPlacementEnv
from xnet_gym.envs.model_placement import ModelPlacementEnv
from xnet_gym.errors import ActionError, ScenarioError
from xnet_gym.instance import build_instance
from xnet_gym.latency import evaluate, evaluate_stages

EXPERT = "xnet_gym/ExpertPlacement-v0"
MODEL = "xnet_gym/ModelPlacement-v0"
PACKAGE = Path(xnet_gym.__file__).parent


class FixedInstances:
    """A custom generator: a fixed list of instances, one drawn per episode from `rng`."""

    def __init__(self, instances, layer=None):
        self.instances = instances
        self.layer = layer
        self.spec = ProblemSpec.of(instances[0])
        self.drawn = []

    def __call__(self, rng, options=None):
        i = int(rng.integers(len(self.instances)))
        self.drawn.append(i)
        layers = None if self.layer is None else [self.layer]
        return Problem.from_instance(self.instances[i], layers=layers, spec=self.spec)


def play_analytic(env, seed=None):
    env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        _, r, done, _, info = env.step(env.unwrapped.analytic_action())
        total += r
    return total, info


@pytest.mark.parametrize("env_id,layer", [(EXPERT, 1), (MODEL, None)])
def test_custom_generator_plugs_into_both_envs(env_id, layer):
    instances = [build_instance("tiny", np.random.default_rng(s)) for s in range(3)]
    gen = FixedInstances(instances, layer)
    env = gym.make(env_id, generator=gen)
    for seed in range(4):
        total, info = play_analytic(env, seed)
        inst = instances[gen.drawn[-1]]
        core = analytic_placement(inst)
        assert total == -1.0 and info["ratio_to_analytic"] == 1.0
        assert env.unwrapped.placement == core
        if env_id == MODEL:
            assert info["latency_s"] == pytest.approx(evaluate(inst, core).latency_s, rel=1e-12)
        else:
            assert info["latency_s"] == pytest.approx(evaluate_stages(inst, core, [layer]).stage_s[0], rel=1e-12)
    assert len(set(gen.drawn)) > 1                       # it drew from the env's np_random
    with pytest.raises(ScenarioError, match="generator = list"):
        gym.make(env_id, generator=[])


def test_rows_are_cut_by_the_declared_field_list():
    env = gym.make(EXPERT, scenario="paper", train_time_steps=4)
    env.reset(seed=0)
    problem = env.unwrapped.problem
    batch = problem.batch
    assert len(batch) == 64 and problem.n_rows == 1
    for i in (0, 5, 63):
        row = batch.row(i)
        for f in dataclasses.fields(batch):
            np.testing.assert_array_equal(getattr(row, f.name), getattr(batch, f.name)[i: i + 1])
    np.testing.assert_array_equal(problem.rows.layers, batch.layers[problem.first: problem.first + 1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.reference_s = 0.0


def test_public_progress_is_read_only_and_tracks_the_episode():
    env = gym.make(MODEL, scenario="tiny", expert_order="frequency")
    u = env.unwrapped
    env.reset(seed=2)
    order = u.problem.rows.order
    seen = []
    done = False
    while not done:
        seen.append((u.current_layer, u.current_expert))
        a = u.analytic_action()
        _, _, done, _, _ = env.step(a)
        assert u.assignment[seen[-1][0], seen[-1][1]] == a
    assert seen == [(layer, int(order[layer, j])) for layer in range(3) for j in range(4)]
    assert u.current_layer is None and u.current_expert is None
    assert u.placement.experts.tolist() == u.problem.reference.experts.tolist()   # the analytic policy
    with pytest.raises(ValueError):
        u.assignment[0, 0] = 1
    with pytest.raises(ActionError, match="after the episode ended"):
        env.step(0)


def test_observation_space_keys_and_docstring_come_from_the_feature_list():
    keys = [f.key for f in (cls() for cls in DEFAULT_FEATURES)]
    env = gym.make(EXPERT, scenario="tiny")
    obs, _ = env.reset(seed=0)
    assert set(env.observation_space.spaces) == set(obs) == set(keys)
    for cls in (ExpertPlacementEnv,):
        for key in keys:
            assert f"`{key}`" in cls.__doc__
    assert "{observation_table}" not in ExpertPlacementEnv.__doc__
    assert ModelPlacementEnv.__doc__.index("## Observation Space") < ModelPlacementEnv.__doc__.index("## Rewards")


class CandidateIsFree(Feature):
    """A test feature: 1 where the candidate has no expert yet."""
    key = "candidate_is_free"
    meaning = "1 where no expert sits on the candidate yet"

    def value(self, state):
        return (state.occupancy[state.srow] == 0).astype(np.float32)


def test_one_new_feature_reaches_space_observation_and_policy():
    from xnet_gym.agents.policy import candidate_keys

    builder = ObservationBuilder([*DEFAULT_FEATURES, CandidateIsFree])
    env = gym.make(EXPERT, scenario="tiny", observation=builder)
    obs, _ = env.reset(seed=0)
    assert obs["candidate_is_free"].shape == (5,) and obs["candidate_is_free"].all()
    obs, *_ = env.step(0)
    assert obs["candidate_is_free"][0] == 0.0 and obs["candidate_is_free"][1:].all()
    assert "candidate_is_free" in candidate_keys(env.observation_space)
    assert "`candidate_is_free`" in builder.table_markdown()
    from gymnasium.utils.env_checker import check_env
    check_env(env.unwrapped, skip_render_check=True)


def test_feature_naming_rule_is_enforced():
    class Misnamed(CandidateIsFree):
        key = "is_free"

    with pytest.raises(ScenarioError, match="per-candidate features are named 'candidate_\\*'"):
        ObservationBuilder([*DEFAULT_FEATURES, Misnamed])


@pytest.mark.parametrize("env_id", [EXPERT, MODEL])
def test_envs_pickle_after_reset_and_play_on(env_id):
    env = gym.make(env_id, scenario="tiny")
    env.reset(seed=0)
    env.step(env.unwrapped.analytic_action())
    clone = pickle.loads(pickle.dumps(env))
    total, info = play_analytic(clone, seed=5)
    again, _ = play_analytic(env, seed=5)
    assert total == again and info["ratio_to_analytic"] == 1.0


def test_v0_slot_names_still_work_with_a_warning(tmp_path):
    with pytest.warns(DeprecationWarning) as caught:
        env = ExpertPlacementEnv("tiny", train_slots=2, slots=3)
    assert sorted(str(w.message) for w in caught) == ["slots= is deprecated; use time_steps=",
                                                      "train_slots= is deprecated; use train_time_steps="]
    env.reset(seed=0)
    assert len(env.problem.instance.time_steps) == 2 and len(env.generator.base.time_steps) == 3
    text = (PACKAGE / "scenarios" / "tiny.toml").read_text().replace("time_steps = 4", "slots = 3")
    path = tmp_path / "old.toml"
    path.write_text(text)
    with pytest.warns(DeprecationWarning, match="evaluation.slots is deprecated"):
        assert build_instance(str(path)).time_steps.tolist() == [0, 1, 2]
    with pytest.raises(TypeError, match="unexpected keyword argument 'slotz'"):
        ExpertPlacementEnv("tiny", slotz=3)


def test_layers_only_point_down():
    """The core library never imports the agents or the solvers: only the composition roots
    (the CLI, and the benchmark's policy protocol) do, lazily; nothing imports the CLI."""
    roots = {PACKAGE / "cli.py", PACKAGE / "benchmark" / "policies.py"}
    upper = re.compile(r"^\s*(from\s+(xnet_gym\.|\.+)(agents|baselines)\b|from\s+(xnet_gym|\.+)\s+import\s+"
                       r"(agents|baselines)\b|import\s+xnet_gym\.(agents|baselines)\b)", re.M)
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "xnet_gym.cli" not in text or path.name == "cli.py", path
        inside = path.is_relative_to(PACKAGE / "agents") or path.is_relative_to(PACKAGE / "baselines")
        if not inside and path not in roots:
            assert not upper.search(text), path
    code = ("import sys, xnet_gym, gymnasium as g; e = g.make('xnet_gym/ExpertPlacement-v0', scenario='tiny'); "
            "e.reset(seed=0); print(sorted(m for m in ('xnet_gym.agents', 'xnet_gym.baselines', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_pickled_env_ships_no_shortest_path_tables():
    env = gym.make(EXPERT, scenario="paper", train_time_steps=16)
    env.reset(seed=0)
    size_mb = len(pickle.dumps(env)) / 1e6
    assert size_mb < 5, size_mb                 # was 81 MB, 80 of them shortest-path tables
    clone = pickle.loads(pickle.dumps(env))
    assert play_analytic(clone, seed=3) == play_analytic(env, seed=3)


def test_terminal_mask_is_never_all_zeros(tmp_path):
    """A layer with exactly as many seats as experts fills every seat; the terminal
    observation keeps the last valid mask, so a masked softmax on it stays finite."""
    text = (PACKAGE / "scenarios" / "tiny.toml").read_text().replace('preset = "tiny"', 'preset = "tiny"\nexperts = 5')
    path = tmp_path / "full.toml"
    path.write_text(text)
    env = gym.make(EXPERT, scenario=str(path))
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        assert obs["action_mask"].any()
        obs, _, done, _, _ = env.step(env.unwrapped.analytic_action())
    assert not env.unwrapped.action_masks().any()        # every seat is taken
    assert obs["action_mask"].sum() == 1                 # the last step's mask


@pytest.mark.parametrize("action", [float("inf"), float("nan"), True, np.True_, 1.5, -1, 5, "1", None])
def test_bad_actions_raise_action_error(action):
    env = gym.make(EXPERT, scenario="tiny")
    env.reset(seed=0)
    with pytest.raises(ActionError, match=r"action = .*: must be an integer in \[0, 4\]"):
        env.unwrapped.step(action)
    env.unwrapped.step(np.int64(1))                      # NumPy integers are fine


def test_masked_sampling_through_gymnasium_needs_int8():
    env = gym.make(EXPERT, scenario="tiny")
    env.reset(seed=0)
    env.step(2)
    mask = env.unwrapped.action_masks().astype(np.int8)  # Gymnasium's sample() wants int8
    env.action_space.seed(0)
    assert {env.action_space.sample(mask=mask) for _ in range(50)} == {0, 1, 3, 4}


@pytest.mark.parametrize("env_id", [EXPERT, MODEL])
def test_info_has_the_same_numpy_keys_on_every_step(env_id):
    """Tianshou stores `info` in its replay buffer and TorchRL reads it by dtype: every value
    is a NumPy scalar, with the same keys on every step and reset (no Python objects)."""
    env = gym.make(env_id, scenario="tiny")
    _, info = env.reset(seed=0)
    keys = set(info)
    assert keys == {"layer", "step_in_layer", "invalid_action", "invalid_actions", "latency_s",
                    "analytic_latency_s", "ratio_to_analytic"}
    done = False
    while not done:
        assert set(info) == keys and all(isinstance(v, np.generic) for v in info.values()), info
        assert info["latency_s"] == 0.0 and info["ratio_to_analytic"] == 0.0
        _, _, done, _, info = env.step(env.unwrapped.analytic_action())
    assert set(info) == keys and all(isinstance(v, np.generic) for v in info.values())
    assert info["ratio_to_analytic"] == 1.0 and info["latency_s"] == info["analytic_latency_s"] > 0


def test_torchrl_reads_every_info_key():
    pytest.importorskip("torchrl")
    from torchrl.envs import GymWrapper, TransformedEnv
    from torchrl.envs.gym_like import default_info_dict_reader
    from torchrl.envs.transforms import ActionMask

    base = gym.make(EXPERT, scenario="tiny", objective="weighted")   # no placement beats the closed form
    env = GymWrapper(base, categorical_action_encoding=True)
    env.set_info_dict_reader(default_info_dict_reader(["latency_s", "ratio_to_analytic", "invalid_actions",
                                                       "layer"]))
    env = TransformedEnv(env, ActionMask())
    env.set_seed(0)
    td = env.rollout(12, break_when_any_done=False)
    ratios = td["next", "ratio_to_analytic"].flatten()
    done = td["next", "done"].flatten()
    assert done.sum() == 3 and (ratios[done] >= 1.0 - 1e-12).all() and (ratios[~done] == 0.0).all()


def test_from_instance_and_custom_generators_fail_clearly_on_bad_input():
    tiny = build_instance("tiny")
    with pytest.raises(ScenarioError, match=r"layers = 3: must be an integer \[0, 2\]"):
        Problem.from_instance(tiny, layers=[3])
    with pytest.raises(ScenarioError, match=r'layers = \[0, 1\]: scope "stage" places exactly one layer'):
        Problem.from_instance(tiny, layers=[0, 1], scope="stage")
    small = dataclasses.replace(ProblemSpec.of(tiny), n_candidates_max=2)
    with pytest.raises(ScenarioError, match=r"spec = .*: does not fit the instance"):
        Problem.from_instance(tiny, layers=[0], spec=small)

    class WrongSizes(FixedInstances):
        def __call__(self, rng, options=None):
            return Problem.from_instance(build_instance("paper", time_steps=2), layers=[0])

    env = ExpertPlacementEnv(generator=WrongSizes([tiny]))
    with pytest.raises(ScenarioError, match=r"generator problem spec = .*must equal the generator's spec"):
        env.reset(seed=0)


@pytest.mark.parametrize("layout,obs_key,mask_key,mask_dtype",
                         [("flat", "observations", "action_mask", np.float32), ("tianshou", "obs", "mask", np.bool_)])
@pytest.mark.parametrize("env_id", [EXPERT, "xnet_gym/ModelPlacement-v0"])
def test_flat_layouts_carry_the_dict_observation_and_pass_the_checker(env_id, layout, obs_key, mask_key, mask_dtype):
    from gymnasium.utils.env_checker import check_env

    flat = gym.make(env_id, scenario="tiny", obs_layout=layout)
    plain = gym.make(env_id, scenario="tiny")
    check_env(flat.unwrapped, skip_render_check=True)
    assert set(flat.observation_space.spaces) == {obs_key, mask_key}
    keys = [k for k in plain.observation_space.spaces if k != "action_mask"]
    o_flat, _ = flat.reset(seed=3)
    o_dict, _ = plain.reset(seed=3)
    for _ in range(40):
        assert o_flat[mask_key].dtype == mask_dtype
        np.testing.assert_array_equal(o_flat[mask_key], o_dict["action_mask"].astype(mask_dtype))
        np.testing.assert_array_equal(o_flat[obs_key], np.concatenate([o_dict[k] for k in keys]))
        assert flat.observation_space.contains(o_flat)
        a = plain.unwrapped.analytic_action()
        o_flat, r_flat, done, _, _ = flat.step(a)
        o_dict, r_dict, _, _, _ = plain.step(a)
        assert r_flat == r_dict
        if done:
            o_flat, _ = flat.reset()
            o_dict, _ = plain.reset()
    pickle.loads(pickle.dumps(flat.unwrapped)).step(0)


def test_bad_obs_layout_names_the_field():
    with pytest.raises(ScenarioError, match=r"obs_layout = 'rllib': .*allowed: dict, flat, tianshou"):
        gym.make(EXPERT, scenario="tiny", obs_layout="rllib")


@pytest.mark.parametrize("env_id", [EXPERT, MODEL])
def test_env_pickled_mid_episode_finishes_the_same_episode(env_id):
    """Ray and SubprocVecEnv can ship an env between steps: the clone must carry on, not only
    reset (its per-batch observation and reward tables are rebuilt, the episode state travels)."""
    env = gym.make(env_id, scenario="tiny")
    env.reset(seed=0)
    env.step(env.unwrapped.analytic_action())
    clone = pickle.loads(pickle.dumps(env))
    rng = np.random.default_rng(1)
    done = False
    while not done:
        action = int(rng.choice(np.flatnonzero(env.unwrapped.action_masks())))
        o1, r1, done, _, i1 = env.step(action)
        o2, r2, _, _, i2 = clone.step(action)
        assert r1 == r2 and i1 == i2
        for key in o1:
            np.testing.assert_array_equal(o1[key], o2[key])


def test_a_custom_feature_runs_in_the_batched_env_as_in_the_single_env():
    """Features are written once, for N episodes: the batched env takes a custom one, and its
    sub-env i shows what the single env shows on the same episode."""
    from xnet_gym.envs.expert_placement_vector import ExpertPlacementVectorEnv
    from xnet_gym.envs.generator import PlacementGenerator

    builder = ObservationBuilder([*DEFAULT_FEATURES, CandidateIsFree])
    venv = ExpertPlacementVectorEnv(4, scenario="tiny", observation=builder, prefetch=False,
                                    generator=PlacementGenerator("tiny", scope="stage", block_size=4))
    single = gym.make(EXPERT, scenario="tiny", observation=ObservationBuilder([*DEFAULT_FEATURES, CandidateIsFree]),
                      generator=PlacementGenerator("tiny", scope="stage", block_size=4))
    obs, _ = venv.reset(seed=3)
    one, _ = single.reset(seed=3)
    np.testing.assert_array_equal(obs["candidate_is_free"][0], one["candidate_is_free"])
    actions = venv.analytic_actions()
    obs, *_ = venv.step(actions)
    one, *_ = single.step(int(actions[0]))
    for key in one:
        np.testing.assert_array_equal(obs[key][0], one[key], err_msg=key)
    assert obs["candidate_is_free"][np.arange(4), actions].sum() == 0.0
