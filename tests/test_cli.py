import json

import pytest

from xnet_gym.cli import main


def test_scenarios_lists_every_preset(capsys):
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for name in ("paper", "kuiper-630", "tiny", "deepseek-esft", "deepseek-esft-packed", "starlink-tle"):
        assert f"{name} " in out


def test_compare_json(capsys):
    assert main(["compare", "--scenario", "tiny", "--json", "--random-seeds", "2", "--objective", "weighted",
                 "--solvers", "optimum", "eplb"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["scenario"] == "tiny" and res["objective"] == "weighted"
    m = res["methods"]
    assert set(m) >= {"Space-XNet", "RandIntra-CG", "RandIntra", "RandPlace", "optimum", "eplb"}
    assert res["reference"] == "Space-XNet" and m["Space-XNet"]["ratio_to_reference"] == 1.0
    assert m["RandIntra-CG"]["seeds"] == 2
    # Sort-match is the optimum of the weighted objective.
    assert m["Space-XNet"]["gap_to_best_known"] == pytest.approx(0.0, abs=1e-12)
    for row in m.values():
        assert row["latency_s"] == pytest.approx(row["propagation_s"] + row["compute_s"] + row["outage_s"],
                                                 rel=1e-12)


def test_compare_table_and_bad_arguments(capsys):
    assert main(["compare", "--scenario", "tiny", "--random-seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "Space-XNet" in out and "RandPlace" in out and "s/token" in out
    assert main(["compare", "--scenario", "nowhere.toml"]) == 2
    assert "scenario = 'nowhere.toml': no such file" in capsys.readouterr().err
    assert main(["compare", "--scenario", "tiny", "--solvers", "magic"]) == 2
    assert "solver = 'magic': unknown solver" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compare", "--time-steps", "-3"])
    assert "-3 must be >= 1" in capsys.readouterr().err
