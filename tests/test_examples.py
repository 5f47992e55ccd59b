"""Every example runs (on `tiny`, each in seconds) and prints what it promises."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=900, cwd=EXAMPLES.parent)   # a hang guard, far above any idle time
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_random_and_analytic():
    out = run("random_and_analytic.py")
    assert out.count("analytic return -1.0,") == 3
    for ret, ratio in re.findall(r"random   return (-[\d.]+) = -ratio (-[\d.]+)", out):
        assert ret == ratio and float(ret) <= -1.0


def test_score_your_placement():
    out = run("score_your_placement.py")
    mine = float(re.search(r"my placement:\s+([\d.]+) s/token", out).group(1))
    closed = float(re.search(r"closed form:\s+([\d.]+) s/token", out).group(1))
    assert closed == pytest.approx(0.813863, abs=1e-6)          # `xnet-gym compare --scenario tiny`
    assert mine > closed


def test_custom_scenario(tmp_path):
    out = run("custom_scenario.py", str(tmp_path))
    assert (tmp_path / "my-shell.toml").is_file()
    rows = dict(re.findall(r"^(Space-XNet|RandPlace|local-search)\s+([\d.]+)", out, flags=re.M))
    assert set(rows) == {"Space-XNet", "RandPlace", "local-search"}
    assert float(rows["local-search"]) <= float(rows["Space-XNet"]) < float(rows["RandPlace"])


@pytest.mark.slow
def test_train_sb3():
    out = run("train_sb3.py", "2048")
    ratio = {k: float(v) for k, v in re.findall(r"^(\w+)\s+geomean x analytic: ([\d.]+)", out, flags=re.M)}
    assert ratio["analytic"] == 1.0
    assert ratio["learned"] < ratio["random"]


def test_torchrl_rollout():
    pytest.importorskip("torchrl")
    out = run("torchrl_rollout.py")
    returns = re.search(r"closed form: returns per episode \[(.*)\]", out).group(1).split(", ")
    assert [float(r) for r in returns] == [-1.0] * 5
    assert float(re.search(r"mean return (-[\d.]+)", out).group(1)) < -1.0


def test_envs_page_equals_the_docstrings():
    from xnet_gym.envs.docs import envs_markdown

    page = (EXAMPLES.parent / "docs" / "envs.md").read_text()
    assert page == envs_markdown(), "regenerate: python -m xnet_gym.envs.docs > docs/envs.md"
    for key in ("candidate_marginal", "action_mask", "## `xnet_gym/ModelPlacement-v0`", "### Version History"):
        assert key in page


def test_nothing_points_outside_the_repository():
    root = EXAMPLES.parent
    for path in [*root.glob("*.md"), *root.glob("docs/*.md"), *root.rglob("xnet_gym/**/*.py"),
                 *root.glob("examples/*.py"), *root.glob("benchmarks/*.py")]:
        text = path.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text, path


def test_benchmark_policy():
    out = run("benchmark_policy.py")
    ratio = {(t, p): float(r) for t, p, r in re.findall(r"^(quick-\S+)\s+(\S+)\s+([\d.]+) x closed form", out,
                                                          flags=re.M)}
    assert len(ratio) == 6
    # Unblocking the max's bottlenecks beats the closed form where experts fire together, and
    # putting each expert on the cheapest free seat, popularity ignored, loses to it.
    assert ratio[("quick-clustered", "unblock_bottlenecks")] < 0.98
    assert ratio[("quick-clustered", "steepest-descent")] <= ratio[("quick-clustered", "unblock_bottlenecks")]
    assert ratio[("quick-tiny", "cheapest_free")] > 1.0 and ratio[("quick-clustered", "cheapest_free")] > 1.0
