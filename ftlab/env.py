"""Run profiles, device, seeding, the banner line and quiet library logs.

Every notebook's setup cell is one call: ``P = ftlab.setup(seed=0)``. Taught in notebook 01, section 0.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import platform
import random
import sys
import warnings
from dataclasses import dataclass, replace
from importlib import metadata

import numpy as np
import torch

from .errors import FtlabError


@dataclass(frozen=True)
class Profile:
    """How big a run is. One place decides it; notebooks read it and never hard-code sizes."""

    name: str
    encoder: str  # model for classification (short name, hub name or local path)
    decoder: str  # causal LM for generation / SFT
    train_rows: int | None  # cap on training rows (None = the whole split)
    eval_rows: int  # rows of validation/test used for evaluation
    steps: int  # optimiser steps for a classification run
    sft_steps: int  # optimiser steps for a causal-LM / SFT run
    batch_size: int
    sft_batch_size: int  # causal-LM rows are longer and the models bigger: smaller batches
    max_length: int  # tokens per classification example after truncation
    sft_length: int  # tokens per prompt + answer for causal-LM / SFT runs
    eval_every: int  # steps between evaluations (and checkpoints)
    bf16: bool = False  # mixed precision; only where the hardware has it
    device: str = "cpu"
    seed: int = 0


PROFILES = {
    # Tiny random models with the real tokenizers: checks the mechanics in seconds (tests, nbval).
    "smoke": Profile("smoke", encoder="tiny-minilm", decoder="tiny-smollm2", train_rows=256,
                     eval_rows=64, steps=24, sft_steps=12, batch_size=8, sft_batch_size=4, max_length=48, sft_length=64,
                     eval_every=12),
    # The real offline models on a 2-core laptop: minutes per notebook, results well above chance.
    "cpu": Profile("cpu", encoder="minilm", decoder="smollm2-135m", train_rows=None,
                   eval_rows=1000, steps=300, sft_steps=60, batch_size=16, sft_batch_size=8, max_length=64, sft_length=96,
                   eval_every=100),
    # Colab / Kaggle: hub models, more steps, bf16.
    "gpu": Profile("gpu", encoder="FacebookAI/roberta-base", decoder="HuggingFaceTB/SmolLM2-360M-Instruct",
                   train_rows=None, eval_rows=1000, steps=1000, sft_steps=300, batch_size=32, sft_batch_size=16,
                   max_length=128, sft_length=256, eval_every=200, bf16=True),
}


def pick_device() -> str:
    """The one device helper every notebook uses: CUDA if present, then Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def get_profile(name: str | None = None) -> Profile:
    """The profile named, else ``$FTLAB_PROFILE``, else ``gpu`` when CUDA is available and ``cpu`` otherwise."""
    source = "the profile argument" if name else "FTLAB_PROFILE"
    name = name or os.environ.get("FTLAB_PROFILE") or ("gpu" if torch.cuda.is_available() else "cpu")
    name = name.strip().lower()
    if name not in PROFILES:
        close = difflib.get_close_matches(name, PROFILES, n=1)
        raise FtlabError(f"Unknown profile {name!r} (from {source}). Choose one of {', '.join(PROFILES)}"
                         + (f"; did you mean {close[0]!r}?" if close else ".")
                         + " Set FTLAB_PROFILE, or pass profile=... to setup().")
    device = pick_device()
    bf16 = PROFILES[name].bf16 and device == "cuda" and torch.cuda.is_bf16_supported()
    return replace(PROFILES[name], device=device, bf16=bf16)


def seed_everything(seed: int) -> None:
    """Same seed, same numbers: Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


# Messages that say nothing actionable to a learner; each was seen in this stack's output.
_QUIET_MESSAGES = [
    r".*gemm_4bit_forward.*",  # bitsandbytes: no CPU kernel for one fused op; it falls back
    r".*TRANSFORMERS_CACHE.*",
    r".*`resume_download` is deprecated.*",
    r".*torch.utils._pytree.*",
    r".*Some weights of .* were not initialized.*",  # we say it ourselves, once, in words
    r".*copying from a non-meta parameter.*",
    r".*does not have many workers.*",
    r".*PagedAdamW.*",
    r".*Unsupported layer type.*",  # PEFT LN-tuning about LayerNorm subclasses it handles anyway
    r".*LoRA tensor\(s\) have invalid shape.*",  # PEFT saving an AdaLoRA layer pruned to rank 0
    r".*Position ids are not supported for parameter efficient tuning.*",  # PEFT prompts: it drops them itself
]

# FutureWarnings only where a library calls another library's renamed API (PEFT and the Trainer still
# call the gradient-checkpointing names transformers 5 deprecates): (message regex, module regex).
# Never a whole category: a FutureWarning from ftlab's own code, or one the learner's call causes, shows.
_QUIET_FUTURE = [
    (r"`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated", r"transformers\.(modeling_utils|training_args)$"),
]


def quiet() -> None:
    """Silence known library noise so stored notebooks show results, not red stderr."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for pattern in _QUIET_MESSAGES:
        warnings.filterwarnings("ignore", message=pattern)
    for message, module in _QUIET_FUTURE:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning, module=module)
    for name in ("transformers", "datasets", "peft", "bitsandbytes", "accelerate", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()  # weight-loading bars; training has its own
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass


def banner(p: Profile) -> str:
    from .version import __version__

    threads = f" ({torch.get_num_threads()} threads)" if p.device == "cpu" else ""
    if p.device == "cuda":
        threads = f" ({torch.cuda.get_device_name(0)})"
    return (f"ftlab {__version__} · profile {p.name} · device {p.device}{threads} · encoder {p.encoder} · "
            f"decoder {p.decoder} · seed {p.seed} · python {platform.python_version()} · torch {_version('torch')} · "
            f"transformers {_version('transformers')} · peft {_version('peft')}")


def setup(seed: int = 0, profile: str | None = None, verbose: bool = True) -> Profile:
    """Seed, choose the profile and device, quiet the libraries and print one banner line.

    Returns the profile, whose fields (``steps``, ``batch_size``, ``encoder`` …) size every run.
    """
    quiet()
    p = replace(get_profile(profile), seed=seed)
    seed_everything(seed)
    if verbose:
        print(banner(p))
    return p


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where live plots and widgets make sense)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def runs_dir():
    """Where training runs keep checkpoints and histories: ``$FTLAB_RUNS`` or ``./runs``."""
    from pathlib import Path

    return Path(os.environ.get("FTLAB_RUNS", "runs"))


@contextlib.contextmanager
def native_stderr_silenced():
    """Silence what native (C++) code writes straight to file descriptor 2 inside the block, e.g. the
    profiler's timestamped "USDT: profiler_start/stop" lines, which Python's warning filters cannot reach."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
