"""The same ftlab.train run, data-parallel over several processes with torchrun.

On CPU (gloo backend), 2 processes, 1 thread each (2×2 threads ran 20× slower on a 2-core machine):
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 scripts/train_ddp.py --global-batch 16
On one machine with several GPUs the same command uses NCCL; for FSDP or DeepSpeed see
notebook A1 (notebooks/A1_scale_out.ipynb). (`accelerate launch --cpu --num_processes 2` starts only one process here: use torchrun.)

Each process takes global_batch / world_size rows per step, so the optimiser sees the same global batch
as a single-process run. Writes <out>/history.json (rank 0) and, per rank k:
  params-rank<k>.txt          the sum of all parameters (a quick number to print)
  params-rank<k>.json         the sha256 of every parameter's bytes (replicas in sync = equal files)
  params-rank<k>.safetensors  every parameter, with --save-params (to compare runs element by element)
"""

import argparse
import hashlib
import json
import os
from pathlib import Path

import torch

import ftlab as fl


def digest(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's shape, dtype and raw bytes: equal only for bit-identical tensors."""
    raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return hashlib.sha256(f"{tuple(tensor.shape)} {tensor.dtype} ".encode() + raw).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description="data-parallel ftlab.train")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--steps", type=int, default=None, help="default: the profile's steps")
    parser.add_argument("--global-batch", type=int, default=None, help="default: the profile's batch size")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--no-dropout", action="store_true", help="make runs comparable across process counts")
    parser.add_argument("--save-params", action="store_true", help="also write every parameter (safetensors)")
    parser.add_argument("--out", default="runs/ddp")
    args = parser.parse_args()

    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    P = fl.setup(seed=0, profile=args.profile, verbose=rank == 0)
    global_batch = args.global_batch or P.batch_size
    if global_batch % world:
        raise fl.FtlabError(f"--global-batch {global_batch} must divide by the {world} processes.")
    model, tok = fl.load_model(P.encoder, seed=P.seed)
    if args.no_dropout:  # dropout draws differ per process; without it the runs are comparable exactly
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    data = fl.tokenize_classification(fl.load_dataset("rotten_tomatoes", P), tok, P.max_length)
    config = fl.TrainConfig.from_profile(P, name="ddp", lr=args.lr, steps=args.steps or P.steps,
                                         batch_size=global_batch // world, output_dir=args.out, live=False)
    history = fl.train(model, data["train"], None, config, tokenizer=tok)
    out = Path(args.out)
    params = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters()}
    checksum = sum(float(p.double().sum()) for p in params.values())
    (out / f"params-rank{rank}.txt").write_text(f"{checksum:.10e}\n")
    digests = {name: digest(p) for name, p in params.items()}  # exact bytes: any drift between replicas shows
    (out / f"params-rank{rank}.json").write_text(json.dumps(digests, indent=1) + "\n")
    if args.save_params:
        from safetensors.torch import save_file

        save_file({name: p.clone() for name, p in params.items()}, str(out / f"params-rank{rank}.safetensors"))
    if rank == 0:
        print(f"{world} process(es) × batch {global_batch // world}: final train loss {history.loss[-1]:.4f}, "
              f"{history.tokens_per_s:,.0f} tokens/s per process")


if __name__ == "__main__":
    main()
