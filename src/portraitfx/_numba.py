"""numba, set up for portraitfx's kernels.

The kernels run in short parallel bursts next to other busy threads (video
decode/encode, MediaPipe). OpenMP's default threading layer keeps its workers
spinning between bursts, which on a 2-core machine steals a third of the CPU from
those threads; the ``workqueue`` layer sleeps instead. (It serves one parallel
call at a time: run effects from one thread per process, as the CLI, the video
runtime and Ray workers do.) Set ``NUMBA_THREADING_LAYER`` to choose otherwise.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

import numba as nb

if "NUMBA_THREADING_LAYER" not in os.environ or os.environ["NUMBA_THREADING_LAYER"] == "workqueue":
    nb.config.THREADING_LAYER = "workqueue"  # numba may have been imported (and configured) before us

__all__ = ["nb"]
