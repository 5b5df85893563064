"""Does ftlab.train (Hugging Face Trainer + ftlab callbacks) cost throughput against a plain PyTorch loop?

Trains the same model from the same start for the same steps both ways, in one process, and prints
tokens/s (non-padding tokens over the time spent in training steps) for each and their ratio. The two are
run in alternating rounds so that load from other processes hits both alike; medians are reported.
Goal: ratio >= 0.95.   Usage: python benchmarks/trainer_vs_loop.py [--profile cpu] [--steps 30] [--rounds 3]
"""

import argparse
import statistics
import tempfile
import time

import torch

import ftlab as fl


def plain_loop(model, dataset, collator, steps: int, batch_size: int, lr: float, seed: int) -> float:
    """The four moves of notebook 01, nothing else. Returns tokens/s over the step time."""
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collator,
                                         generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    tokens, busy, done = 0, 0.0, 0
    while done < steps:
        for batch in loader:
            start = time.perf_counter()
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # the Trainer clips too
            optimizer.step()
            optimizer.zero_grad()
            busy += time.perf_counter() - start
            tokens += int(batch["attention_mask"].sum())
            done += 1
            if done == steps:
                break
    return tokens / busy


def ftlab_train(model, dataset, tokenizer, steps: int, batch_size: int, lr: float, seed: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        config = fl.TrainConfig(name="bench", steps=steps, batch_size=batch_size, lr=lr, eval_every=steps,
                                seed=seed, live=False, output_dir=out)
        return fl.train(model, dataset, None, config, tokenizer=tokenizer).tokens_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="smoke | cpu | gpu (default: $FTLAB_PROFILE or detected)")
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps per round and per side")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    P = fl.setup(seed=0, profile=args.profile)
    _, tokenizer = fl.load_model(P.encoder)
    data = fl.tokenize_classification(fl.load_dataset("rotten_tomatoes", P), tokenizer, P.max_length)["train"]
    collator = fl.classification_collator(tokenizer)
    plain, trainer = [], []
    for r in range(args.rounds):
        model, _ = fl.load_model(P.encoder, seed=P.seed)
        plain.append(plain_loop(model, data, collator, args.steps, P.batch_size, 5e-5, P.seed))
        model, _ = fl.load_model(P.encoder, seed=P.seed)
        trainer.append(ftlab_train(model, data, tokenizer, args.steps, P.batch_size, 5e-5, P.seed))
        print(f"round {r + 1}: plain {plain[-1]:,.0f} tokens/s · ftlab.train {trainer[-1]:,.0f} tokens/s")
    p, t = statistics.median(plain), statistics.median(trainer)
    print(f"\nmodel {P.encoder} · batch {P.batch_size} · max length {P.max_length} · {args.steps} steps × {args.rounds} rounds")
    print(f"median tokens/s: plain loop {p:,.0f} · ftlab.train {t:,.0f} · ratio {t / p:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
