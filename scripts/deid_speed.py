"""Speed and output digest of the text detector (``detect_phi``) over every note of physionet-dev: notes
per CPU-second (one core, after a warm-up call) and a sha256 over every note's spans (start, end, type),
the check that a speed-up changed no output. Prints aggregates only (no note text, no span).

    PYTHONPATH=src .venv/bin/python scripts/deid_speed.py [--profile 400] [--model DIR]

``--profile N``: cProfile over the first N notes instead, the 25 costliest functions (own time).
``--model DIR``: a model folder written by ``carelens deid train`` instead of the shipped model.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import sys
import time
from pathlib import Path

from carelens.core.config import shared_data_dir
from carelens.privacy.corpus import load_corpus
from carelens.privacy.crf import load_crf
from carelens.privacy.detect import detect_phi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=int, metavar="N", help="profile the first N notes instead")
    parser.add_argument("--model", type=Path, help="a model folder (default: the shipped model)")
    args = parser.parse_args()
    crf = load_crf(args.model) if args.model else None
    data = shared_data_dir()
    if data is None:
        sys.exit("shared data not found (../shared/data or CARELENS_SHARED_DATA)")
    texts = [n.text for n in load_corpus(data / "deid" / "physionet-dev")]
    detect_phi("warm up Dr. Smith 1/2/2020", crf=crf)
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [detect_phi(t, crf=crf) for t in texts[: args.profile]])
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return
    c0 = time.process_time()
    found = [detect_phi(t, crf=crf) for t in texts]
    cpu = time.process_time() - c0
    digest = hashlib.sha256(repr([[(s.start, s.end, s.type) for s in spans] for spans in found]).encode())
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"{len(texts)} notes, {len(texts) / cpu:.0f} notes per CPU-second, spans sha256 {digest.hexdigest()[:16]}, "
          f"load {load}")  # fmt: skip


if __name__ == "__main__":
    main()
