"""Write data/preferences.jsonl: preference pairs (prompt / chosen / rejected) made by the project.

One pair per row of data/instructions.jsonl, in the same split, so no prompt of a held-out pair was seen
in training. `chosen` is the correct answer. `rejected` is one of two kinds of bad answer:
- "wrong": a plausible mistake (a neighbouring number, an off-by-a-little sum, a swapped order, a
  regularised plural such as "mouses");
- "repetitive": the correct answer followed by its own last words over and over, the loop a fine-tuned
  small model falls into when it never learned to stop.
The prompt is kept out of both answers: DPO scores only the answer tokens. Deterministic: run it again and
the file is byte-for-byte the same.  Usage: python data/make_preferences.py
"""

import json
import random
from pathlib import Path

from make_instructions import PLURALS, in_words

HERE = Path(__file__).parent


def wrong_answer(row: dict, rng: random.Random) -> str:
    task, prompt, right = row["task"], row["prompt"], row["response"]
    if task == "words":
        n = int(prompt.split("number ")[1].split(" ")[0])
        near = [m for m in (n - 10, n - 1, n + 1, n + 10) if 0 <= m <= 99]
        return in_words(rng.choice(near))
    if task == "reverse":
        words = prompt.split(": ", 1)[1].split()
        return " ".join(words)  # the original order: the instruction ignored
    if task == "add":
        a, b = (int(x) for x in prompt.removeprefix("What is ").removesuffix("?").split(" plus "))
        off = rng.choice([-10, -2, -1, 1, 2, 10])
        return f"{a} plus {b} is {a + b + off}."
    if task == "sort":
        xs = [int(x) for x in right.split(", ")]
        if rng.random() < 0.5:
            return ", ".join(map(str, reversed(xs)))  # largest first
        i = rng.randrange(len(xs) - 1)
        xs[i], xs[i + 1] = xs[i + 1], xs[i]  # one neighbouring pair swapped
        return ", ".join(map(str, xs))
    word = prompt.split("'")[1]
    assert right == PLURALS[word]
    return word + "s"  # the regular rule applied where it does not hold (mouses, childs, sheeps)


def repetitive_answer(row: dict, rng: random.Random) -> str:
    right = row["response"]
    tail = " ".join(right.split()[-rng.randint(1, 2):])
    return right + (" " + tail) * rng.randint(4, 8)


def pairs() -> list[dict]:
    rng = random.Random(0)
    rows = [json.loads(line) for line in (HERE / "instructions.jsonl").read_text(encoding="utf-8").splitlines()]
    made = []
    for row in rows:
        kind = "wrong" if rng.random() < 2 / 3 else "repetitive"
        rejected = wrong_answer(row, rng) if kind == "wrong" else repetitive_answer(row, rng)
        assert rejected != row["response"], row
        made.append({"task": row["task"], "kind": kind, "prompt": row["prompt"], "chosen": row["response"],
                      "rejected": rejected, "split": row["split"]})
    return made


def main() -> None:
    rows = pairs()
    out = HERE / "preferences.jsonl"
    out.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in rows), encoding="utf-8")
    print(f"wrote {len(rows)} pairs to {out.name}")


if __name__ == "__main__":
    main()
