"""Data-parallel training on CPU: 2 torchrun processes (gloo) match one process with the same global batch.

The replicas must hold bit-identical parameters (sha256 of every tensor's bytes), and the 2-process result
must equal the 1-process one element by element within float rounding (the gradient is summed in a
different order), while training moved the weights far more than that tolerance.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "train_ddp.py"
ARGS = ["--profile", "smoke", "--steps", "6", "--global-batch", "8", "--no-dropout", "--save-params"]
# Measured largest |2 processes - 1 process| over all elements after 6 steps: 1.5e-8; one step moves
# weights by ~lr = 5e-5, so a different batch split or a missed update shows up far above this.
TOLERANCE = 1e-6


def launch(cmd, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 processes x 2 threads on 2 cores ran 20x slower
    done = subprocess.run([*cmd, str(SCRIPT), *ARGS, "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "history.json").read_text())


def params(folder, rank):
    from safetensors.torch import load_file

    return load_file(str(folder / f"params-rank{rank}.safetensors"))


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo is tested on Linux/macOS")
def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    import ftlab as fl

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = launch(torchrun, tmp_path / "two")
    one = launch([sys.executable], tmp_path / "one")

    # the replicas: bit for bit the same parameters, by digest and by value
    digests = [json.loads((tmp_path / "two" / f"params-rank{r}.json").read_text()) for r in (0, 1)]
    drifted = sorted(n for n in digests[0] if digests[0][n] != digests[1].get(n))
    assert set(digests[0]) == set(digests[1]) and not drifted, f"the replicas drifted apart: {drifted}"
    rank0, rank1, single = params(tmp_path / "two", 0), params(tmp_path / "two", 1), params(tmp_path / "one", 0)
    assert set(rank0) == set(rank1) == set(single) == set(digests[0])
    assert all(torch.equal(rank0[n], rank1[n]) for n in rank0)

    # 2 processes x 4 rows == 1 process x 8 rows, per element, within float rounding
    gap = {n: (rank0[n] - single[n]).abs().max().item() for n in single}
    worst = max(gap, key=gap.get)
    assert gap[worst] <= TOLERANCE, f"{worst}: max |2 processes - 1 process| = {gap[worst]:.2e}"
    fl.setup(seed=0, profile="smoke", verbose=False)
    start, _ = fl.load_model("tiny-minilm", seed=0)  # the script's starting weights
    moved = max((single[n] - p.detach()).abs().max().item() for n, p in start.named_parameters())
    assert moved > 100 * TOLERANCE, f"training barely moved the weights ({moved:.1e}): the match says nothing"

    assert len(two["loss"]) == len(one["loss"]) == 6
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
