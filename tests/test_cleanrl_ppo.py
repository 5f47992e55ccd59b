"""A short CleanRL-style masked PPO, in plain torch over `gymnasium.vector`, under Gymnasium
1.x next-step autoreset. The policy is evaluated on every observation the vector env returns,
terminal ones included; on a layer with exactly as many seats as experts the terminal mask
used to be all zeros, which turns a masked softmax into NaN."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import xnet_gym  # noqa: F401
from xnet_gym.scenario import PRESET_DIR


def flat(obs: dict) -> torch.Tensor:
    return torch.as_tensor(np.concatenate([obs[k] for k in sorted(obs)], axis=-1), dtype=torch.float32)


@pytest.mark.slow
def test_masked_ppo_trains_without_nan_under_next_step_autoreset(tmp_path):
    text = (PRESET_DIR / "tiny.toml").read_text().replace('preset = "tiny"', 'preset = "tiny"\nexperts = 5')
    path = tmp_path / "full.toml"                      # 5 experts on 5 candidates: every seat fills
    path.write_text(text)
    n_envs, n_steps, updates = 4, 64, 12
    envs = gym.make_vec("xnet_gym/ExpertPlacement-v0", num_envs=n_envs, vectorization_mode="sync",
                        scenario=str(path))
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    torch.manual_seed(0)
    obs, _ = envs.reset(seed=0)
    width = flat(obs).shape[1]
    actor = nn.Sequential(nn.Linear(width, 64), nn.Tanh(), nn.Linear(64, envs.single_action_space.n))
    critic = nn.Sequential(nn.Linear(width, 64), nn.Tanh(), nn.Linear(64, 1))
    optimiser = torch.optim.Adam([*actor.parameters(), *critic.parameters()], lr=3e-3)

    def policy(x, mask):
        logits = torch.where(mask > 0, actor(x), torch.tensor(-torch.inf))
        return torch.distributions.Categorical(logits=logits)   # raises on NaN probabilities

    returns, running = [], np.zeros(n_envs)
    for _ in range(updates):
        xs, masks, actions, logps, rewards, dones, values = [], [], [], [], [], [], []
        for _ in range(n_steps):
            x, mask = flat(obs), torch.as_tensor(obs["action_mask"])
            assert (mask.sum(dim=1) > 0).all()                 # never an all-zero mask
            with torch.no_grad():
                dist = policy(x, mask)
                action = dist.sample()
                values.append(critic(x).squeeze(-1))
            obs, reward, term, trunc, _ = envs.step(action.numpy())
            xs.append(x), masks.append(mask), actions.append(action), logps.append(dist.log_prob(action))
            rewards.append(torch.as_tensor(reward, dtype=torch.float32))
            dones.append(torch.as_tensor(term | trunc, dtype=torch.float32))
            running += reward
            for i in np.flatnonzero(term | trunc):
                returns.append(running[i])
                running[i] = 0.0
        # Undiscounted returns-to-go within each episode (gamma = 1, the reward contract).
        ret = torch.zeros(n_envs)
        targets = []
        for r, d in zip(reversed(rewards), reversed(dones)):
            ret = r + ret * (1.0 - d)
            targets.append(ret)
        targets = torch.stack(targets[::-1])
        x, mask, action = torch.cat(xs), torch.cat(masks), torch.cat(actions)
        old_logp, advantage = torch.cat(logps), (targets - torch.stack(values)).flatten()
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        for _ in range(4):
            dist = policy(x, mask)
            ratio = torch.exp(dist.log_prob(action) - old_logp)
            loss = -torch.min(ratio * advantage, ratio.clamp(0.8, 1.2) * advantage).mean()
            loss = loss + 0.5 * ((critic(x).squeeze(-1) - targets.flatten()) ** 2).mean()
            assert torch.isfinite(loss)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    envs.close()
    assert len(returns) > 100 and np.isfinite(returns).all()
    assert max(returns) <= 0.0 and min(returns) > -5.0       # -latency / closed form, a few x at worst
