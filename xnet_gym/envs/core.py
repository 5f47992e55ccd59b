"""Sequential assignment, batched: the one step of ExpertPlacement-v0 and ModelPlacement-v0.

`AssignmentCore` holds N episodes that run in lockstep (every episode of an env has the
same number of steps, `n_rows * E`): the assignment, the seats taken, the masks, the
observation features (`observation.py`), the reward (`reward.py`) and the fall-back for a
masked-out action are written once here, over a leading episode axis. The Gymnasium env
(`assignment.py`) is the core at N = 1; the batched vector env
(`expert_placement_vector.py`) is the core at N. Scoring a finished placement stays with
the envs' callers of `scoring`, the one evaluator.

Episode i places rows `row0[i] .. row0[i] + n_rows - 1` of a block of `LayerRows` (one row
for ExpertPlacement, the model's layers for ModelPlacement), expert by expert in each row's
`order`.
"""

from __future__ import annotations

import numba
import numpy as np

from .observation import AssignmentState, ObservationBuilder
from .problem import LayerRows, ProblemSpec
from .reward import INVALID_ACTION_PENALTY, SparseReward


class AssignmentCore:
    """N episodes of sequential assignment in lockstep: `start` them on a block of rows,
    `step` them with one action each, `observe` them, `finish` them with their scores. The
    Gymnasium env drives one, the batched vector env N."""

    state: AssignmentState          # set by `start`

    def __init__(self, spec: ProblemSpec, builder: ObservationBuilder, reward: SparseReward):
        self.spec = spec
        self.builder = builder
        self.reward = reward
        self.done = False

    def start(self, rows: LayerRows, row0: np.ndarray, n_rows: int, tables, reference_s: np.ndarray) -> None:
        """New episodes: episode i on rows row0[i] + (0 .. n_rows-1) of `rows`; `tables` are
        `builder.tables(rows, spec)`; reference_s (N,) the closed form's score of each."""
        spec = self.spec
        N, C, E = len(row0), spec.n_candidates_max, spec.n_experts
        self.rows = rows
        self.n_rows = n_rows
        self.state = state = AssignmentState(np.asarray(row0, dtype=np.int64), n_rows, C, n_rows * E)
        self.reference_s = np.asarray(reference_s, dtype=np.float64)
        self._ar = np.arange(N)
        self._j = 0
        self.done = False
        self.candidate_index = np.full((N * n_rows, E), -1, dtype=np.int64)   # (N*n_rows, E); -1 unplaced
        self._count = np.zeros((N * n_rows, C), dtype=np.int64)
        self._padding_ok = np.arange(C)[None, :] < rows.n_candidates[state.row0 + 0][:, None]
        self.mask = self._padding_ok.copy()                                    # (N, C) the current row's seats
        state.mask_f[:] = self.mask
        state.expert = rows.order[state.row, 0]
        self.shaped = np.zeros(N)
        self.invalid = np.zeros(N, dtype=np.int64)
        self._placed_buf, self._a_buf = np.empty(N, dtype=np.int64), np.empty(N, dtype=np.int64)
        self.builder.start(tables, state, spec)
        self.reward.start(rows, state, self.reference_s, spec)

    @property
    def step_in_layer(self) -> int:
        """Experts placed in the current row (0 again once a row is complete)."""
        return self._j

    def cheapest_free(self) -> np.ndarray:
        """(N,) the cheapest candidate with a free seat in each episode's current row: where a
        masked-out action goes, and the closed form's fall-back."""
        return _cheapest_free_all(self.mask, self.rows.cost_s, self.state.row)

    def analytic_actions(self) -> np.ndarray:
        """(N,) the closed form's candidate for each current expert, or the cheapest free seat
        where that one is taken."""
        state = self.state
        idx = self.rows.analytic_index[state.row, state.expert]
        return np.where(self.mask[self._ar, idx], idx, self.cheapest_free())

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Place every episode's current expert on candidate actions[i] (checked integers in
        [0, C-1]); returns (reward (N,), invalid (N,) bool), fresh arrays. The last step's
        reward lacks the final term: add `finish(latency_s)` once the placements are scored.
        `last_action` is then the candidate each episode's expert went to (a buffer the next
        step overwrites)."""
        state = self.state
        assert not self.done
        E = self.spec.n_experts
        a, placed, invalid = self._a_buf, self._placed_buf, np.empty(len(self._ar), dtype=np.bool_)
        self._j += 1
        row_done = self._j == E
        n_invalid = _assign(actions, self.mask, state.mask_f, self.rows.cost_s, self.rows.order, state.row,
                            state.srow, state.expert, self.candidate_index, self._count, state.occupancy,
                            self.spec.capacity, self.invalid, self._j if not row_done else -1, a, placed, invalid)
        self.builder.place(state, placed, a)
        shaped = self.reward.step(state, placed, a)
        self.shaped += shaped
        reward = shaped - INVALID_ACTION_PENALTY * invalid if n_invalid else shaped
        self.last_action = a
        state.step += 1
        if row_done:
            self._j = 0
            if state.layer_index + 1 < self.n_rows:             # the next row of every episode
                state.layer_index += 1
                state.row = state.row0 + state.layer_index
                state.srow = state.srow + 1
                self.mask = np.arange(self.mask.shape[1])[None, :] < self.rows.n_candidates[state.row][:, None]
                state.mask_f[:] = self.mask
                state.expert = self.rows.order[state.row, 0]
            else:
                self.done = True        # the observation keeps the last valid mask and expert
        return reward, invalid

    def finish(self, objective_s: np.ndarray) -> np.ndarray:
        """(N,) what the last step adds to the reward, from each placement's score."""
        return self.reward.final(np.asarray(objective_s, dtype=np.float64), self.reference_s, self.shaped)

    def observe(self) -> dict[str, np.ndarray]:
        return self.builder.observe(self.state)

    def satellites(self) -> np.ndarray:
        """(N*n_rows, E) the satellite of each placed expert, -1 where not yet placed."""
        state = self.state
        rows = state.row0 if self.n_rows == 1 else (state.row0[:, None] + np.arange(self.n_rows)[None, :]).ravel()
        ci = self.candidate_index
        return np.where(ci >= 0, self.rows.candidates[rows[:, None], ci], -1)     # -1 reads a column, then is masked


@numba.njit(nogil=True, cache=True)
def _cheapest_free(mask, cost_s):
    """The cheapest candidate with a free seat (the first on ties); never called on a row
    with none (a mask is never all False mid-episode)."""
    best, a = np.inf, -1
    for c in range(len(mask)):
        if mask[c] and cost_s[c] < best:
            best, a = cost_s[c], c
    return a


@numba.njit(nogil=True, cache=True)
def _cheapest_free_all(mask, cost_s, row):
    out = np.empty(len(row), dtype=np.int64)
    for i in range(len(row)):
        out[i] = _cheapest_free(mask[i], cost_s[row[i]])
    return out


@numba.njit(nogil=True, cache=True)
def _assign(actions, mask, mask_f, cost_s, order, row, srow, expert, candidate_index, count, occupancy, capacity,
            invalid_count, next_j, a_out, placed, invalid):
    """Every episode's placement, in one pass: a masked-out action goes to the cheapest free
    candidate (the first on ties, as `cheapest_free`), the seat is taken, a full candidate
    leaves the mask, and the next expert of the row (next_j >= 0) becomes current. Returns
    the number of invalid actions."""
    N = mask.shape[0]
    n_invalid = 0
    for i in range(N):
        a = actions[i]
        invalid[i] = not mask[i, a]
        if invalid[i]:
            n_invalid += 1
            invalid_count[i] += 1
            a = _cheapest_free(mask[i], cost_s[row[i]])
        a_out[i] = a
        placed[i] = expert[i]
        r = srow[i]
        candidate_index[r, expert[i]] = a
        n = count[r, a] + 1
        count[r, a] = n
        occupancy[r, a] = n / capacity
        if n >= capacity:
            mask[i, a] = False
            if next_j >= 0:                 # the last step of a row keeps its mask
                mask_f[i, a] = 0.0
        if next_j >= 0:
            expert[i] = order[row[i], next_j]
    return n_invalid
