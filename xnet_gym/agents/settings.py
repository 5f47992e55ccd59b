"""The names of the training settings, defined once and importable without torch (the
command line builds its choices from them before the rl extra is known to be installed)."""

from __future__ import annotations

ALGOS = ("maskable_ppo", "ppo")             # SB3-contrib's MaskablePPO, SB3's PPO (through CheapestFreeAction)
ENCODERS = ("mlp", "attention")             # the constructive policy's candidate encoder
VEC_KINDS = ("dummy", "batched")            # SB3 DummyVecEnv of single envs, or the batched vector env
# The closed form (constructive envs), steepest descent (refinement, and re-placement on the
# routing history), and steepest descent on the coming window's true routing (re-placement: a
# privileged teacher, for imitation only).
IMITATION_EXPERTS = ("analytic", "greedy", "lookahead")
