"""Sequential-assignment dynamics shared by ExpertPlacement-v0 and ModelPlacement-v0.

One step places one expert of the current layer on one candidate satellite of the layer's
subnet. The class docstrings of the two envs are the user-facing documentation.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..errors import XnetError, field_error
from ..placement import Placement
from .generator import PlacementGenerator
from .reward import INVALID_ACTION_PENALTY, REWARDS
from .types import Episode
from .viewer import Viewer


class AssignmentEnv(gym.Env):
    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    whole_model = False

    def __init__(self, scenario="paper", *, layer=None, expert_order="index", randomize_activation=True,
                 train_slots=None, tokens=None, objective=None, route=None, layer_strategy="central",
                 slots=None, reward="dense", render_mode=None, generator=None, reward_fn=None, viewer=None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise field_error(XnetError, "render_mode", render_mode,
                              f"allowed: None, {', '.join(self.metadata['render_modes'])}")
        if reward_fn is None:
            if reward not in REWARDS:
                raise field_error(XnetError, "reward", reward, f"allowed: {', '.join(REWARDS)}")
            reward_fn = REWARDS[reward]()
        self.generator = generator or PlacementGenerator(
            scenario, whole_model=self.whole_model, layer=layer, randomize_activation=randomize_activation,
            train_slots=train_slots, tokens=tokens, expert_order=expert_order, objective=objective,
            route=route, layer_strategy=layer_strategy, slots=slots)
        self.reward_fn = reward_fn
        self.render_mode = render_mode
        self.viewer = viewer or Viewer()
        base = self.generator.base
        C, k = self.generator.n_max, base.trace.top_k
        self.n_candidates_max = C
        box = lambda n, high=1.0: spaces.Box(0.0, high, shape=(n,), dtype=np.float32)  # noqa: E731
        self.observation_space = spaces.Dict({
            "expert": box(4),
            "candidate_cost": box(C),
            "candidate_seat_rank": box(C),
            "candidate_marginal": box(C),
            "candidate_occupancy": box(C),
            "candidate_rate": box(C),
            "candidate_coactivation": box(C, float(k)),
            "action_mask": box(C),
        })
        self.action_space = spaces.Discrete(C)
        self.episode: Episode | None = None

    # ------------------------------------------------------------------------ state
    def _start(self, episode: Episode) -> None:
        n, C = episode.n_layers, self.n_candidates_max
        E = episode.n_experts
        self.episode = episode
        self._li = 0
        self._j = 0
        self._E = E
        self._capacity = episode.capacity
        self._occupancy = np.zeros((n, C), dtype=np.float32)   # experts on each candidate / capacity
        self._coact = np.zeros((n, E, C), dtype=np.float32)
        self._set_max = [np.zeros(len(w), dtype=np.float32) for _, w in episode.set_members]
        self._experts = episode.base.experts.copy()
        self._placed = np.zeros((n, E), dtype=bool)
        self._cand_index = np.zeros((n, E), dtype=np.int64)
        self._shaped = 0.0
        self._invalid = 0
        self._padding_ok = np.arange(C)[None, :] < episode.n_candidates[:, None]   # (n, C)
        self._n_layers = n
        self._layer_frac = episode.layers / max(episode.n_model_layers - 1, 1)
        self._expert_obs = np.empty(4, dtype=np.float32)
        self._mask = self._padding_ok[0].copy()
        self._mask_f = self._mask.astype(np.float32)
        self._count = np.zeros((n, C), dtype=np.int64)

    def _current_expert(self) -> int:
        return int(self.episode.order[self._li, self._j])

    def action_masks(self) -> np.ndarray:
        """Bool (n_candidates_max,): candidates with a free seat. Never all False mid-episode."""
        if self.episode is None:
            raise XnetError("action_masks() before reset(): call reset() first")
        return self._mask.copy()

    def analytic_action(self) -> int:
        """The candidate index the analytic (sort-match) placement uses for the current expert;
        if the agent has filled that satellite, the cheapest candidate with a free seat."""
        if self.episode is None or self._li >= self._n_layers:
            raise XnetError("analytic_action() needs an episode in progress: call reset() first")
        ep, li = self.episode, self._li
        idx = int(ep.analytic_index[li, self._current_expert()])
        if self._mask[idx]:
            return idx
        return int(np.argmin(np.where(self._mask, ep.cost_s[li], np.inf)))

    def _observation(self) -> dict:
        ep = self.episode
        done = self._li >= self._n_layers
        li = self._n_layers - 1 if done else self._li
        e = int(ep.order[li, -1]) if done else int(ep.order[li, self._j])
        E = self._E
        cn = ep.cost_norm[li]
        # Expected max(cost here, worst cost among the co-active experts placed so far) over
        # the tokens that activate e: the max objective's marginal, in cost_norm units.
        offsets, set_index, weight = ep.marginal_tables[li]
        lo, hi = offsets[e], offsets[e + 1]
        if lo == hi:                                # no token activates e
            marginal = cn.copy()
        else:
            marginal = np.maximum(cn[:, None], self._set_max[li][set_index[lo:hi]]) @ weight[lo:hi]
            np.minimum(marginal, 1.0, out=marginal)  # float32 weights sum to 1 only within rounding
        x = self._expert_obs
        x[0] = ep.probabilities[li, e]
        x[1] = ep.rank_norm[li, e]
        x[2] = (self._li * E + self._j) / (self._n_layers * E)
        x[3] = self._layer_frac[li]
        return {
            "expert": x.copy(),
            "candidate_cost": cn.copy(),
            "candidate_seat_rank": ep.seat_rank[li].copy(),
            "candidate_marginal": marginal,
            "candidate_occupancy": self._occupancy[li].copy(),
            "candidate_rate": ep.rate_norm[li].copy(),
            "candidate_coactivation": self._coact[li, e].copy(),
            "action_mask": self._mask_f.copy(),
        }

    # ------------------------------------------------------------------------ gym API
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._start(self.generator(self.np_random, options))
        return self._observation(), {"layer": int(self.episode.layers[0]), "step_in_layer": 0}

    def step(self, action):
        ep = self.episode
        if ep is None:
            raise XnetError("step() before reset(): call reset() first")
        if self._li >= self._n_layers:
            raise XnetError("step() after the episode ended: call reset()")
        try:
            a = int(action)
            ok = a == action and 0 <= a < self.n_candidates_max
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise field_error(XnetError, "action", action,
                              f"must be an integer in [0, {self.n_candidates_max - 1}]")
        li = self._li
        e = int(ep.order[li, self._j])
        invalid = not self._mask[a]
        if invalid:
            a = int(np.argmin(np.where(self._mask, ep.cost_s[li], np.inf)))
            self._invalid += 1
        layer = int(ep.layers[li])
        self._experts[layer, e] = ep.candidates[li, a]
        self._placed[li, e] = True
        self._cand_index[li, e] = a
        count = self._count[li, a] = self._count[li, a] + 1
        self._occupancy[li, a] = count / self._capacity
        if count >= self._capacity:
            self._mask[a] = False
            self._mask_f[a] = 0.0
        self._coact[li, :, a] += ep.coactivation[li, :, e]
        sm = self._set_max[li]
        offsets, set_index, _ = ep.marginal_tables[li]
        sets_e = set_index[offsets[e]: offsets[e + 1]]
        sm[sets_e] = np.maximum(sm[sets_e], ep.cost_norm[li, a])
        shaped = self.reward_fn.step(ep, li, e, a)
        self._shaped += shaped
        reward = shaped - (INVALID_ACTION_PENALTY if invalid else 0.0)
        self._j += 1
        if self._j == self._E:
            self._li += 1
            self._j = 0
            if self._li < self._n_layers:
                self._mask = self._padding_ok[self._li].copy()
                self._mask_f = self._mask.astype(np.float32)
        terminated = self._li >= self._n_layers
        info = {"layer": layer, "step_in_layer": self._j, "invalid_action": invalid}
        if terminated:
            placement = Placement(ep.base.gateways, self._experts)
            latency = self.generator.objective_s(ep, placement, self._cand_index)
            reward += self.reward_fn.final(ep, latency, self._shaped)
            info.update(latency_s=latency, analytic_latency_s=ep.reference_s,
                        ratio_to_analytic=latency / ep.reference_s, invalid_actions=self._invalid,
                        placement=placement)
        return self._observation(), float(reward), terminated, False, info

    def render(self):
        if self.render_mode is None or self.episode is None:
            return None
        li = min(self._li, self.episode.n_layers - 1)
        shown = self._experts.copy()
        shown[self.episode.layers] = np.where(self._placed, shown[self.episode.layers], -1)
        if self.render_mode == "ansi":
            return self.viewer.ansi(self.episode, li, shown)
        return self.viewer.rgb_array(self.episode, li, shown)

    def close(self):
        self.viewer.close()
