"""Write data/instructions.jsonl: a small English instruction-following set made by the project.

Five templated tasks with short, checkable answers, so a 135 M-parameter model can learn the format in a
few dozen CPU steps and ROUGE / perplexity on held-out rows measure it. Deterministic: run it again and
the file is byte-for-byte the same.  Usage: python data/make_instructions.py
"""

import json
import random
from pathlib import Path

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
       "sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
WORDS = ("apple river candle garden window pencil tiger cloud bridge violin orange silver planet "
         "rocket forest ladder island mirror button castle dragon harbor meadow lantern").split()
PLURALS = {"mouse": "mice", "child": "children", "goose": "geese", "foot": "feet", "tooth": "teeth",
           "man": "men", "woman": "women", "person": "people", "leaf": "leaves", "knife": "knives",
           "wolf": "wolves", "box": "boxes", "city": "cities", "baby": "babies", "bus": "buses",
           "cactus": "cacti", "ox": "oxen", "fish": "fish", "sheep": "sheep", "hero": "heroes"}


def in_words(n: int) -> str:
    if n < 20:
        return ONES[n]
    tens, ones = divmod(n, 10)
    return TENS[tens] + ("" if ones == 0 else "-" + ONES[ones])


def example(rng: random.Random) -> dict:
    task = rng.choice(["words", "reverse", "add", "sort", "plural"])
    if task == "words":
        n = rng.randint(0, 99)
        return {"task": task, "prompt": f"Write the number {n} in words.", "response": in_words(n)}
    if task == "reverse":
        ws = rng.sample(WORDS, rng.randint(3, 5))
        return {"task": task, "prompt": "Reverse the order of these words: " + " ".join(ws),
                "response": " ".join(reversed(ws))}
    if task == "add":
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        return {"task": task, "prompt": f"What is {a} plus {b}?", "response": f"{a} plus {b} is {a + b}."}
    if task == "sort":
        xs = rng.sample(range(1, 100), rng.randint(3, 5))
        return {"task": task, "prompt": "Sort these numbers from smallest to largest: " + ", ".join(map(str, xs)),
                "response": ", ".join(map(str, sorted(xs)))}
    word = rng.choice(sorted(PLURALS))
    return {"task": task, "prompt": f"What is the plural of '{word}'?", "response": PLURALS[word]}


def main(n: int = 800, seed: int = 0) -> None:
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        ex = example(rng)
        if ex["prompt"] not in seen:  # no prompt in two splits
            seen.add(ex["prompt"])
            rows.append(ex)
    for i, ex in enumerate(rows):
        ex["split"] = "test" if i % 10 == 0 else "validation" if i % 10 == 1 else "train"
    out = Path(__file__).with_name("instructions.jsonl")
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {out.name}")


if __name__ == "__main__":
    main()
