"""Space-XNet, the paper's placement: ring subnets, central gateways, sort-match experts."""

from xnet_gym.analytic import analytic_placement
from xnet_gym.instance import Instance
from xnet_gym.placement import Placement


class SpaceXNet:
    name = "Space-XNet"
    randomized = False
    paper_strategy = True       # a default row of `xnet-gym compare`
    reference = True            # the row the others are a ratio of

    def solve(self, instance: Instance) -> Placement:
        return analytic_placement(instance)
