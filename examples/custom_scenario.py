"""Write a scenario from scratch (a new constellation and a new model) and compare the
paper's strategies on it.

    python examples/custom_scenario.py [OUT_DIR]

The TOML below is a complete scenario: a 4 x 10 Walker delta shell at 600 km and a small
MoE model with 4 layers of 6 experts (top-2). `xnet-gym compare --scenario PATH` does the same
from the shell.
"""

import sys
import tempfile
from pathlib import Path

from xnet_gym import baselines
from xnet_gym.compare import format_table, score_strategies
from xnet_gym.instance import build_instance
from xnet_gym.scenario import load_scenario

SCENARIO = """
name = "my-shell"
description = "4 x 10 delta at 600 km, a 4-layer model with 6 experts per layer"
seed = 7

[constellation]
pattern = "delta"
planes = 4
sats_per_plane = 10
phasing = 1
altitude_km = 600.0
inclination_deg = 60.0

[links]
isl_rate_bps = 10e9
hop_delay_s = 0.001
link_survival = 0.98

[model]
name = "small-moe"
layers = 4
experts = 6
top_k = 2
hidden_size = 1024
expert_ff_size = 2816
vocab_size = 32000

[compute]
gflops = 20.0

[activation]
source = "clustered"
alpha = 1.0
tokens = 1000
clusters = 4
coactivation_strength = 1.5

[evaluation]
time_steps = 12
objective = "max"
"""

if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    path = folder / "my-shell.toml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)                 # every key is checked here
    print(f"wrote {path}: {scenario.description}")
    instance = build_instance(scenario)
    solvers = {name: (lambda seed, name=name: baselines.get(name, seed=seed)
                      if baselines.SOLVERS[name].randomized else baselines.get(name))
               for name in baselines.paper_strategies()}
    solvers["local-search"] = lambda seed: baselines.get("local-search", time_budget_s=5.0)
    print(format_table(score_strategies(instance, solvers, random_seeds=3)))
    print(f"the same from the shell: xnet-gym compare --scenario {path} --solvers local-search")
