"""Install the PyTorch build that fits this machine, before the rest of ftlab's dependencies.

Plain `pip install torch` on Linux takes the CUDA build from PyPI (several GB) even where there is no
NVIDIA GPU. So: with no NVIDIA GPU on Linux, take the CPU build from PyTorch's CPU index, and fall back to
the default index if that index cannot be reached; with a GPU (or on macOS / Windows, whose default wheels
need no CUDA download), take the default. The version is the one pinned in the constraints file.

    python tools/install_torch.py [--constraints constraints.txt] [--dry-run]

TORCH_SPEC (pip arguments, e.g. "torch==2.13.0") overrides the choice. Says what it chose, and why.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def nvidia_gpu_present() -> bool:
    """An NVIDIA driver with at least one GPU: /proc/driver/nvidia/gpus (Linux) or a working nvidia-smi."""
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
            return out.returncode == 0 and "GPU" in out.stdout
        except (OSError, subprocess.TimeoutExpired):
            return False
    return False


def pinned_torch(constraints: Path | None) -> str:
    """``torch==X`` from the constraints file, or plain ``torch`` when there is no pin."""
    if constraints and constraints.exists():
        for line in constraints.read_text().splitlines():
            if re.match(r"^\s*torch\s*==", line):
                return line.split("#")[0].strip().replace(" ", "")
    return "torch"


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether an index answers at all; pip would otherwise retry it for every dependency of torch."""
    import urllib.request

    try:
        urllib.request.urlopen(url, timeout=timeout).close()
        return True
    except OSError:
        return False


def choose(gpu: bool, system: str, requirement: str, cpu_index_reachable: bool = True) -> tuple[list[list[str]], str]:
    """The pip argument lists to try in order, and the reason, for a machine with/without a GPU."""
    if system == "Linux" and not gpu:
        if not cpu_index_reachable:
            return [[requirement]], f"no NVIDIA GPU found, but {CPU_INDEX} is unreachable: the default index"
        return ([[requirement, "--index-url", CPU_INDEX, "--retries", "1"], [requirement]],
                "no NVIDIA GPU found: the CPU build (PyTorch's CPU index; the default index if that fails)")
    if gpu:
        return [[requirement]], "NVIDIA GPU found: the default (CUDA) build"
    return [[requirement]], f"{system}: the default build (no CUDA download on this system)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--constraints", type=Path, default=Path("constraints.txt"))
    ap.add_argument("--dry-run", action="store_true", help="print the choice, install nothing")
    args = ap.parse_args(argv)

    if os.environ.get("TORCH_SPEC"):
        attempts, why = [shlex.split(os.environ["TORCH_SPEC"])], "TORCH_SPEC is set"
    else:
        try:
            import torch  # noqa: F401  (already there: keep it; pip would not replace it anyway)

            print(f"install_torch: torch {torch.__version__} is already installed; keeping it.")
            return 0
        except ImportError:
            pass
        gpu, system = nvidia_gpu_present(), platform.system()
        cpu_index = system != "Linux" or gpu or reachable(CPU_INDEX + "/torch/")
        attempts, why = choose(gpu, system, pinned_torch(args.constraints), cpu_index)
    for i, pip_args in enumerate(attempts):
        print(f"install_torch: {why} -> pip install {' '.join(pip_args)}", flush=True)
        if args.dry_run:
            return 0
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *pip_args]).returncode == 0
        if done:
            version = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                                     capture_output=True, text=True).stdout.strip()
            print(f"install_torch: installed torch {version}")
            return 0
        if i + 1 < len(attempts):
            print("install_torch: that failed (index unreachable?); trying the default index.", flush=True)
    print("install_torch: could not install PyTorch; see pip's message above.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
