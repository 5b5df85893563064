"""Data-parallel training on CPU: 2 torchrun processes (gloo) match one process with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "train_ddp.py"
ARGS = ["--profile", "smoke", "--steps", "6", "--global-batch", "8", "--no-dropout"]


def launch(cmd, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 processes x 2 threads on 2 cores ran 20x slower
    done = subprocess.run([*cmd, str(SCRIPT), *ARGS, "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "history.json").read_text())


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo is tested on Linux/macOS")
def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = launch(torchrun, tmp_path / "two")
    one = launch([sys.executable], tmp_path / "one")
    sums = [float((tmp_path / "two" / f"params-rank{r}.txt").read_text()) for r in (0, 1)]
    assert sums[0] == sums[1], "the replicas drifted apart"
    assert sums[0] == pytest.approx(float((tmp_path / "one" / "params-rank0.txt").read_text()), rel=1e-8)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert len(two["loss"]) == 6
