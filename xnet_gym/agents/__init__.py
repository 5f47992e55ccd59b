"""SB3 policies, wrappers, training, evaluation and sweeps (the `rl` extra; `scale` for sweeps)."""
