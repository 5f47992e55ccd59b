"""Pictures: every `xnet-gym show` command on every preset, and the drawn data checked
against the model (marker positions, the ring path, the breakdown's sums)."""

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image

from xnet_gym.analytic import analytic_placement
from xnet_gym.baselines import Anneal, get
from xnet_gym.cli import main
from xnet_gym.compare import score_strategies
from xnet_gym.instance import build_instance
from xnet_gym.latency import evaluate, token_latencies_s
from xnet_gym.scenario import preset_names
from xnet_gym.show.breakdown import draw_breakdown
from xnet_gym.show.constellation_map import draw_constellation
from xnet_gym.show.geo import lon_lat_deg, ring_path
from xnet_gym.show.subnet_map import draw_placements

PACKAGE = Path(__file__).resolve().parents[1]


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _by_gid(fig, gid):
    found = [a for ax in fig.axes for a in ax.get_children() if a.get_gid() == gid]
    assert found, gid
    return found


@pytest.mark.parametrize("scenario", preset_names())
def test_every_show_command_writes_a_picture_on_every_preset(scenario, tmp_path):
    steps = ["--time-steps", "4"]
    for args in (["constellation", "--scenario", scenario, *steps, "--time-step", "1"],
                 ["placement", "--scenario", scenario, *steps, "--layer", "1", "--against", "random"],
                 ["breakdown", "--scenario", scenario, *steps, "--random-seeds", "1", "--tokens", "300"]):
        out = tmp_path / f"{args[0]}.png"
        # Its speed (under 10 s on `paper`) is measured by benchmarks/bench_show.py, not here.
        assert main(["show", *args, "--out", str(out)]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert _pixels(out).std() > 10.0                          # not blank


def test_constellation_gif_has_one_frame_per_time_step(tmp_path):
    out = tmp_path / "c.gif"
    assert main(["show", "constellation", "--scenario", "tiny", "--time-steps", "5", "--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.format == "GIF" and im.n_frames == 5 and im.is_animated
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    assert all(f.std() > 10 for f in frames)
    assert any(np.any(frames[0] != f) for f in frames[1:])        # the satellites move


def test_bad_show_arguments_fail_at_the_boundary(tmp_path, capsys):
    assert main(["show", "constellation", "--scenario", "tiny", "--out", str(tmp_path / "x.jpg")]) == 2
    assert "--out = " in capsys.readouterr().err
    assert main(["show", "constellation", "--scenario", "tiny", "--time-step", "99",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "--time-step = 99: the scenario has time steps 0..3" in capsys.readouterr().err
    assert main(["show", "placement", "--scenario", "tiny", "--layer", "7", "--out", str(tmp_path / "x.png")]) == 2
    assert "--layer = 7: must be an integer [0, 2]" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())                            # nothing half-written


@pytest.mark.parametrize("scenario", ["paper", "starlink-tle"])
def test_constellation_map_puts_gateways_and_the_ring_path_where_the_model_has_them(scenario):
    inst = build_instance(scenario, time_steps=4)
    t = 2
    fig = draw_constellation(inst, t)
    lon, lat = lon_lat_deg(inst.constellation, t)
    g = inst.layout.central_gateways
    (markers,) = _by_gid(fig, "gateways")
    np.testing.assert_allclose(markers.get_offsets(), np.stack([lon[g], lat[g]], axis=1))
    # Positions: latitude from the geometry, independently of the map code.
    r = inst.constellation.positions_km[t]
    np.testing.assert_allclose(lat, np.degrees(np.arctan2(r[:, 2], np.hypot(r[:, 0], r[:, 1]))), atol=1e-9)
    paths = ring_path(inst.topology, g, t)
    dist = inst.topology.distances(g, [t])[0]                      # (L, N) shortest-path seconds
    graph = inst.topology.graph(t)
    sym = graph + graph.T
    for layer, path in enumerate(paths):
        nxt = (layer + 1) % len(g)
        assert path[0] == g[layer] and path[-1] == g[nxt]       # gateway to gateway, in layer order
        hops = sum(sym[a, b] for a, b in itertools.pairwise(path))
        assert hops == pytest.approx(dist[layer, g[nxt]], rel=1e-12)   # it is a shortest path
    up = inst.topology.up[t]
    (live,) = _by_gid(fig, "live_isl")
    (failed,) = _by_gid(fig, "failed_isl")
    crossing = np.abs(lon[inst.constellation.links[:, 0]] - lon[inst.constellation.links[:, 1]]) >= 180
    assert len(live.get_segments()) == int((up & ~crossing).sum())
    assert len(failed.get_segments()) == int((~up & ~crossing).sum())


def test_placement_panels_mark_exactly_the_moved_experts():
    inst = build_instance("deepseek-esft-packed", time_steps=4)
    layer = 1
    a = analytic_placement(inst)
    b = Anneal(iterations=500, layers=[layer]).solve(inst)
    fig = draw_placements(inst, layer, {"closed form": a, "anneal": b})
    moved = np.flatnonzero(a.experts[layer] != b.experts[layer])
    assert len(moved) > 0
    (ring,) = _by_gid(fig, "moved")
    con = inst.constellation
    S, g = con.sats_per_plane, inst.layout.central_gateways[layer]
    x = (con.slot - con.slot[g] + S // 2) % S - S // 2
    sats = b.experts[layer][moved]
    np.testing.assert_allclose(ring.get_offsets(), np.stack([x[sats], con.plane[sats]], axis=1))
    gateway = _by_gid(fig, "gateway")
    assert all(np.allclose(m.get_offsets(), [[x[g], con.plane[g]]]) for m in gateway)


def test_breakdown_bars_sum_to_the_compare_totals():
    inst = build_instance("paper", time_steps=6)
    factories = {name: (lambda s, name=name: get(name, seed=s) if name.startswith("Rand") else get(name))
                 for name in ("Space-XNet", "RandIntra-CG", "RandPlace")}
    result = score_strategies(inst, factories, random_seeds=2, keep_placements=True)
    placements = result.pop("placements")
    tokens = {m: token_latencies_s(inst, p) for m, p in placements.items()}
    fig = draw_breakdown(result, tokens)
    for m, row in result["methods"].items():
        heights = [_by_gid(fig, f"bar:{m}:{k}")[0].get_height() for k in ("propagation_s", "compute_s", "outage_s")]
        assert sum(heights) == pytest.approx(row["latency_s"], abs=1e-9)
        (line,) = _by_gid(fig, f"cdf:{m}")
        np.testing.assert_array_equal(line.get_xdata(), np.sort(tokens[m]))
    # The CDF's mean is the evaluator's latency of the same placement.
    ref = placements["Space-XNet"]
    assert tokens["Space-XNet"].mean() == pytest.approx(evaluate(inst, ref).latency_s, rel=1e-12)


def test_pictures_never_touch_the_global_backend():
    import ast

    for path in list((PACKAGE / "xnet_gym").rglob("*.py")) + list((PACKAGE / "agents").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "use":
                assert getattr(node.func.value, "id", "") != "matplotlib", path
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any("pyplot" in n for n in names), path
    code = "import sys, xnet_gym, xnet_gym.cli, xnet_gym.show; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_readme_images_exist_and_come_from_the_script():
    import re

    # The README shows one picture; the docs pages the rest (their links are relative to docs/).
    pages = [(PACKAGE / "README.md").read_text(), *(p.read_text() for p in (PACKAGE / "docs").glob("*.md"))]
    images = sorted({("docs/" if not m.startswith("docs/") else "") + m for text in pages
                     for m in re.findall(r"!\[[^\]]*\]\(((?:docs/)?img/[^)]+)\)", text)})
    assert len(images) >= 6
    script = (PACKAGE / "scripts" / "make_images.py").read_text()
    for rel in images:
        path = PACKAGE / rel
        assert path.is_file() and path.stat().st_size > 10_000, rel
        assert Path(rel).name in script, rel                      # regenerated by the one command


def test_show_without_matplotlib_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; from xnet_gym.cli import main; "
            f"sys.exit(main(['show', 'constellation', '--scenario', 'tiny', '--out', r'{tmp_path / 'c.png'}']))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 2
    assert "pictures need matplotlib: pip install 'xnet-gym[viz]'" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "c.png").exists()
