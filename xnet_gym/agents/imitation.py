"""Warm starts: behaviour cloning of an expert before RL fine-tuning.

Experts: `analytic`, the closed form (`env.analytic_action()`, both envs), and `greedy`,
steepest descent (`env.greedy_action()`, ExpertRefine-v0: the move or swap that lowers the
latency most, then stop), the search whose moves a refinement agent imitates, and on
ExpertReplace-v0 `lookahead` (`env.lookahead_action()`: steepest descent within the budget on
the coming window's true routing, which the student never observes).
`collect_demonstrations` plays the expert in the training vector env and records each
step's observation, action mask, action and return-to-go.
`behaviour_clone` then fits the policy to those actions (cross-entropy of the masked action
distribution) and the value head to the returns (the closed form's own value: with
gamma = 1 it is minus the rest of its latency ratio), so that RL starts from a policy that
already scores 1.000 and from a critic that already knows what that policy earns: the first
PPO updates then judge deviations from the closed form, not noise.
"""

from __future__ import annotations

import numpy as np
import torch as th

from xnet_gym.errors import XnetError, field_error

from .settings import IMITATION_EXPERTS

EXPERTS = IMITATION_EXPERTS


def collect_demonstrations(venv, steps: int, expert: str = "analytic") -> dict:
    """`steps` env steps (summed over the vector env's envs) of the expert's play."""
    if expert not in EXPERTS:
        raise field_error(XnetError, "--imitate", expert, f"allowed: {', '.join(EXPERTS)}")
    n = venv.num_envs
    method = f"{expert}_action"
    obs = venv.reset()
    columns: dict[str, list] = {k: [] for k in obs}
    masks, actions, rewards, dones = [], [], [], []
    for _ in range(max(steps // n, 1)):
        action = np.array(venv.env_method(method))
        for k, v in obs.items():
            columns[k].append(v.copy())
        masks.append(np.stack(venv.env_method("action_masks")))
        actions.append(action)
        obs, reward, done, _ = venv.step(action)
        rewards.append(reward)
        dones.append(done)
    # Returns-to-go per env, cut at episode ends; the last, unfinished episode of each env is
    # left out of the value targets (its remaining rewards are unknown).
    R, D = np.array(rewards), np.array(dones)
    ret = np.zeros_like(R)
    known = np.zeros_like(D)
    acc, seen = np.zeros(n), np.zeros(n, dtype=bool)
    for t in range(len(R) - 1, -1, -1):                 # a loop over time, vectorised over envs
        acc = np.where(D[t], 0.0, acc) + R[t]
        seen |= D[t]
        ret[t], known[t] = acc, seen
    return {"obs": {k: np.concatenate(v) for k, v in columns.items()}, "masks": np.concatenate(masks),
            "actions": np.concatenate(actions), "returns": ret.reshape(-1), "value_known": known.reshape(-1)}


def behaviour_clone(model, demos: dict, epochs: int = 10, batch_size: int = 256, learning_rate: float = 1e-3,
                    seed: int = 0) -> dict:
    """Fit `model.policy` (a MaskablePPO policy) to the demonstrations; returns the last
    epoch's mean cross-entropy and the share of demonstrated actions it now picks."""
    policy = model.policy
    policy.set_training_mode(True)
    optimizer = th.optim.Adam(policy.parameters(), lr=learning_rate)
    n = len(demos["actions"])
    rng = np.random.default_rng(seed)
    to_t = {k: th.as_tensor(v, dtype=th.float32) for k, v in demos["obs"].items()}
    actions = th.as_tensor(demos["actions"], dtype=th.long)
    masks = demos["masks"]
    returns = th.as_tensor(demos["returns"], dtype=th.float32)
    known = th.as_tensor(demos["value_known"], dtype=th.float32)
    stats = {}
    for _ in range(epochs):
        order = rng.permutation(n)
        losses = []
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            obs = {k: v[idx] for k, v in to_t.items()}
            values, log_prob, _ = policy.evaluate_actions(obs, actions[idx], action_masks=masks[idx])
            value_loss = ((values.flatten() - returns[idx]) ** 2 * known[idx]).sum() / known[idx].sum().clamp(min=1)
            loss = -log_prob.mean() + 0.5 * value_loss
            optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            optimizer.step()
            losses.append(float(-log_prob.mean().detach()))
        stats["cross_entropy"] = float(np.mean(losses))
    policy.set_training_mode(False)
    with th.no_grad():
        dist = policy.get_distribution(to_t, action_masks=masks)
        picked = dist.distribution.probs.argmax(dim=-1)
    stats["agreement"] = float((picked == actions).float().mean())
    stats["demonstration_steps"] = int(n)
    return stats
