"""Record each benchmark track's instance hash in the suite file.

    python benchmarks/freeze_suite.py            # fill in the tracks that have no hash yet
    python benchmarks/freeze_suite.py --check    # only compare; exit 1 on a mismatch

A track that already has a hash is never rewritten: a different hash means its instances
changed, which a released track must not do (add a new track instead). The file is
rewritten atomically.
"""

from __future__ import annotations

import argparse
import re
import sys

from xnet_gym.atomic import atomic_write_text
from xnet_gym.benchmark.suite import SUITE_FILE, load_suite, track_sha256


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default=str(SUITE_FILE))
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a mismatch or a missing hash")
    args = parser.parse_args(argv)
    suite = load_suite(args.suite)
    text = suite.path.read_text(encoding="utf-8")
    bad = 0
    for track in suite.tracks.values():
        digest = track_sha256(track)
        if track.instances_sha256 == digest:
            print(f"{track.name:<22} {digest}  ok")
            continue
        if track.instances_sha256 is not None or args.check:
            print(f"{track.name:<22} {digest}  MISMATCH (recorded {track.instances_sha256})")
            bad += 1
            continue
        # Insert the hash after the track's seeds line.
        block = re.compile(rf'(name = "{re.escape(track.name)}"\n(?:(?!\[\[tracks\]\]).*\n)*?seeds = \[[^\]]*\]\n)')
        text, n = block.subn(lambda m, d=digest: m.group(1) + f'instances_sha256 = "{d}"\n', text, count=1)
        if n != 1:
            print(f"{track.name}: could not find its seeds line to insert the hash after", file=sys.stderr)
            return 2
        print(f"{track.name:<22} {digest}  recorded")
    if not args.check:
        atomic_write_text(suite.path, text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
