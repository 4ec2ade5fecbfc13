"""The data side of ``ml`` needs numpy only: torch is imported by the modules that run a
model (``ml.sasrec``, ``ml.artifact``, ``ml.train``), so a process that only reads events,
splits or evaluates does not pay for it."""

from __future__ import annotations

import subprocess
import sys


def test_data_split_baselines_and_evaluation_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"  # any 'import torch' now fails
            "import ml.data, ml.synthetic, ml.split, ml.baselines, ml.evaluate, ml.vocab\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
