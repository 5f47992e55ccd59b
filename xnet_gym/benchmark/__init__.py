"""`xnet-gym benchmark`: a frozen suite of held-out tracks, any policy, one table.

- `suite`: the tracks (`suite.toml`, shipped with the package) and their instance hashes;
- `policies`: the one protocol every method is scored through (closed form, solvers,
  Python callables, SB3 zips);
- `runner`: every policy on the same instances, timed, with ratios to the closed form and
  to the best known latency (`best_known.json`);
- `report`: CSV, JSON, Markdown and a picture.
"""

from .policies import ActionPolicy, Episode, PlacementPolicy, callable_policy, parse_policy
from .suite import BenchmarkError, Suite, Track, instances_sha256, load_suite

__all__ = ["ActionPolicy", "BenchmarkError", "Episode", "PlacementPolicy", "Suite", "Track", "callable_policy",
           "instances_sha256", "load_suite", "parse_policy"]
