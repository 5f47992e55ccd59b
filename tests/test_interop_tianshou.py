"""Tianshou drives the env through its own Collector, replay buffer and DQN, masked by the
`obs_layout="tianshou"` convention (`batch.obs.mask`). Needs the `interop` extra."""

import gymnasium as gym
import numpy as np
import pytest

import xnet_gym  # noqa: F401  (registers the envs)

tianshou = pytest.importorskip("tianshou")
torch = pytest.importorskip("torch")

from tianshou.algorithm import DQN  # noqa: E402
from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy  # noqa: E402
from tianshou.algorithm.optim import AdamOptimizerFactory  # noqa: E402
from tianshou.data import Collector, VectorReplayBuffer  # noqa: E402
from tianshou.env import DummyVectorEnv  # noqa: E402
from tianshou.utils.net.common import Net  # noqa: E402
from tianshou.utils.torch_utils import policy_within_training_step  # noqa: E402


@pytest.mark.parametrize("env_id", ["xnet_gym/ExpertPlacement-v0", "xnet_gym/ModelPlacement-v0",
                                    "xnet_gym/ExpertRefine-v0"])
def test_tianshou_dqn_collects_masked_and_updates(env_id):
    torch.manual_seed(0)
    envs = DummyVectorEnv([lambda: gym.make(env_id, scenario="tiny", obs_layout="tianshou") for _ in range(2)])
    envs.seed([0, 1])
    probe = gym.make(env_id, scenario="tiny", obs_layout="tianshou")
    obs_dim = probe.observation_space["obs"].shape[0]
    n_actions = int(probe.action_space.n)
    net = Net(state_shape=obs_dim, action_shape=n_actions, hidden_sizes=(32,))
    policy = DiscreteQLearningPolicy(model=net, action_space=probe.action_space,
                                     observation_space=probe.observation_space, eps_training=0.5)
    algorithm = DQN(policy=policy, optim=AdamOptimizerFactory(lr=1e-3), target_update_freq=20)
    buffer = VectorReplayBuffer(1_000, buffer_num=2)
    # Tianshou's buffer validation is on: an object or NaN info column would raise here.
    collector = Collector(algorithm, envs, buffer, exploration_noise=True, raise_on_nan_in_buffer=True)
    collector.reset()
    with policy_within_training_step(policy):     # epsilon-greedy exploration, as in training
        stats = collector.collect(n_step=400)
    assert stats.n_collected_steps >= 400
    assert stats.n_collected_episodes > 0
    returns = np.asarray(stats.returns)
    # Construction returns -latency / closed form; refinement 1 - best / closed form, >= 0.
    refine = env_id.endswith("ExpertRefine-v0")
    assert np.all(np.isfinite(returns)) and (np.all(returns >= -1e-12) if refine else np.all(returns < 0))
    # The mask reached both the greedy and the exploring actions: nothing was invalid.
    assert int(np.asarray(buffer.info.invalid_action[: len(buffer)]).sum()) == 0
    with policy_within_training_step(policy):
        losses = [algorithm.update(buffer=buffer, sample_size=64).loss for _ in range(5)]
    assert np.all(np.isfinite(losses))
