"""The README is the contract: short, every link resolves, every command runs (here or in CI)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _slug(heading: str) -> str:
    """GitHub's and mkdocs' anchor for a heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_is_short():
    assert len(README.splitlines()) <= 300


def test_every_link_resolves():
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    assert len(links) > 10
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.exists(), link
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(), flags=re.M)
            assert anchor in {_slug(h) for h in headings}, link


def test_quickstart_commands_are_what_ci_runs():
    quickstart = _blocks("bash")[0].strip().splitlines()
    assert len(quickstart) == 2
    for line in quickstart:
        assert line in CI, line


def test_the_other_commands_run(tmp_path):
    others = [line for block in _blocks("bash")[1:] for line in block.strip().splitlines()]
    assert others
    for line in others:
        command = line.split("#")[0].strip()
        argv = shlex.split(command)
        assert argv[0] == "xnet-gym", line
        done = subprocess.run([sys.executable, "-m", "xnet_gym.cli", *argv[1:]], cwd=tmp_path, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, (line, done.stderr[-2000:])


def test_the_python_example_runs():
    (code,) = _blocks("python")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 1.0 <= float(done.stdout.strip().splitlines()[-1]) < 10.0     # a random placement's ratio


@pytest.mark.slow
def test_docs_build_with_warnings_as_errors(tmp_path):
    pytest.importorskip("mkdocs")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "index.html").is_file()
    assert (tmp_path / "site" / "leaderboard" / "index.html").is_file()
