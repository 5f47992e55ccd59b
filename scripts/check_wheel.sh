#!/usr/bin/env bash
# Build the wheel, install it in a fresh virtual environment with the core dependencies only
# (no rl, viz or test extras), and run the two commands a new user runs first.
#   bash scripts/check_wheel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/build"
"$work/build/bin/pip" install -q build
"$work/build/bin/python" -m build --wheel --outdir "$work/dist" . > "$work/build.log"
wheel="$(ls "$work"/dist/xnet_gym-*.whl)"
echo "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) kB)"
python3 -m venv "$work/user"
"$work/user/bin/pip" install -q "$wheel"
cd "$work"          # not the source tree: only the installed wheel can be imported
"$work/user/bin/xnet-gym" scenarios
"$work/user/bin/xnet-gym" compare --scenario tiny --json > "$work/tiny.json"
"$work/user/bin/python" - "$work/tiny.json" <<'PY'
import importlib.util, json, sys
res = json.load(open(sys.argv[1]))
assert res["scenario"] == "tiny" and res["reference"] == "Space-XNet", res
assert abs(res["methods"]["Space-XNet"]["latency_s"] - 0.8138630) < 1e-6, res["methods"]["Space-XNet"]
missing = [m for m in ("torch", "stable_baselines3", "matplotlib") if importlib.util.find_spec(m) is None]
print(f"compare --scenario tiny: Space-XNet {res['methods']['Space-XNet']['latency_s']:.6f} s/token; "
      f"not installed (core only): {', '.join(missing)}")
import xnet_gym
print(f"xnet_gym {xnet_gym.__version__} from {xnet_gym.__file__}")
PY
