"""Scenario and placement files round-trip exactly."""

import numpy as np
import pytest

from xnet_gym.analytic import analytic_placement
from xnet_gym.errors import PlacementError
from xnet_gym.placement import Placement
from xnet_gym.scenario import load_scenario, preset_names


@pytest.mark.parametrize("name", preset_names())
def test_scenario_toml_round_trip(tmp_path, name):
    sc = load_scenario(name)
    path = tmp_path / f"{name}.toml"
    sc.save(path)
    back = load_scenario(path)
    for table in ("links", "model", "compute", "placement", "evaluation"):
        assert getattr(back, table) == getattr(sc, table), table
    con, con_back = vars(sc.constellation).copy(), vars(back.constellation).copy()
    if "path" in con:   # saved files name data by absolute path
        assert back.resolve(con_back.pop("path")) == sc.resolve(con.pop("path")).resolve()
    assert con_back == con
    assert back.activation.source == sc.activation.source and back.activation.tokens == sc.activation.tokens
    if sc.activation.path:
        assert back.resolve(back.activation.path) == sc.resolve(sc.activation.path).resolve()
    assert (back.name, back.seed) == (sc.name, sc.seed)


def test_placement_json_round_trip(tmp_path, tiny):
    p = analytic_placement(tiny)
    p.save(tmp_path / "p.json")
    assert Placement.load(tmp_path / "p.json") == p
    (tmp_path / "bad.json").write_text('{"gateways": [1, 2]}')
    with pytest.raises(PlacementError, match=r"placement JSON = .*need \{'gateways'"):
        Placement.load(tmp_path / "bad.json")
    with pytest.raises(PlacementError, match=r"placement.gateways length = 2: must equal the number of layers \(3\)"):
        tiny.validate(Placement(np.array([0, 1]), np.zeros((2, 4), dtype=int)))
