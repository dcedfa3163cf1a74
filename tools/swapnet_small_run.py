"""The recorded small swap-network run on this machine's CPU (the training code's proof, not a usable model).

The test photos (obama x3, biden, astronaut) and augmented copies, prepared at 128 px
(identities from sub-folders), then ``portraitfx train swapnet`` for ``--steps`` steps
at the default width. Prints the logged losses (identity falling, reconstruction
falling) and writes the run to ``out/swapnet-run/`` (not tracked; no weights are
committed). Resumable: run it again.

    .venv/bin/python tools/swapnet_small_run.py [--steps 600] [--augment 24]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "swapnet-run"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--augment", type=int, default=24)
    args = ap.parse_args()
    people = OUT / "people"
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.jpg"):
        person = "obama" if name.startswith("obama") else name.split(".")[0]
        (people / person).mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "tests" / "data" / name, people / person / name)
    config = OUT / "swap.yaml"
    config.write_text(
        f"data: people\noutput: run\nsteps: {args.steps}\naugment: {args.augment}\nlog_every: 50\n"
        "options: {size: 128, batch: 4, id_steps: 300}\n"
    )
    subprocess.run([sys.executable, "-m", "portraitfx", "train", "swapnet", str(config)], check=True)
    print((OUT / "run" / "log.csv").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
