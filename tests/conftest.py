from pathlib import Path

import pytest

from xnet_gym.instance import build_instance

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
ESFT = SHARED / "moe" / "esft_deepseek_v2_lite"
TLE_FILE = SHARED / "tle" / "starlink_celestrak_2025-12-07.txt"


def need_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def tiny():
    return build_instance("tiny")


@pytest.fixture(scope="session")
def paper():
    return build_instance("paper")


def write_scenario(tmp_path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


BASE_TOML = """
name = "t"
seed = 1
[constellation]
pattern = "delta"
planes = 3
sats_per_plane = 6
phasing = 1
altitude_km = 550.0
inclination_deg = 53.0
[model]
preset = "tiny"
[activation]
tokens = 50
[evaluation]
time_steps = 2
"""
