"""What `pip install .` puts into site-packages: one top-level package (no `agents` or
`baselines` beside it, which collided with other packages of those names), and its data."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_installs_only_xnet_gym(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("xnet_gym-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"xnet_gym", next(t for t in top if t.endswith(".dist-info"))}, sorted(top)
    for needed in ("xnet_gym/agents/train.py", "xnet_gym/baselines/anneal.py", "xnet_gym/benchmark/suite.toml",
                   "xnet_gym/benchmark/best_known.json",
                   "xnet_gym/benchmark/scenarios/packed-law.toml", "xnet_gym/data/esft_law.npz",
                   "xnet_gym/scenarios/paper.toml"):
        assert needed in names, needed
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "xnet-gym = xnet_gym.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
