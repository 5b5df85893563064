"""Write data/facts.jsonl: a small fictional world for fine-tuning vs retrieval (notebook 15).

The facts are invented, so no pretrained model can know them: whatever a model answers right after
fine-tuning or with retrieval it got from this file. Each fact is one short passage and three questions
that ask for it in different words: the first is for training, the second for validation, the third is
held out (a paraphrase never trained on). Unanswerable questions ask about things the world does not say
(an island that is not in it, an attribute no passage gives): the right answer is "unknown", and a
confident answer there is a hallucination. Deterministic: run it again and the file is byte-for-byte
the same.  Usage: python data/make_facts.py
"""

import json
import random
from pathlib import Path

HERE = Path(__file__).parent

SYLLABLES = "ka lo ren va mir tal os un bre fen gar il dor sa ve ny thal quo zem ar".split()

# (passage, three questions, answer), one template per attribute; {e} is the entity, {a} the answer
TEMPLATES = {
    "capital": ("The island of {e} has its capital at {a}.",
                ["What is the capital of {e}?", "Which town is the capital of the island of {e}?",
                 "Where is the seat of government of {e}?"]),
    "founder": ("The island of {e} was first settled by the navigator {a}.",
                ["Who first settled {e}?", "Which navigator was the first to settle on {e}?",
                 "Whose ships brought the first settlers to {e}?"]),
    "export": ("The main export of {e} is {a}.",
               ["What is the main export of {e}?", "What does {e} export most?",
                "Which product does the island of {e} sell abroad more than any other?"]),
    "festival": ("Every spring, {e} holds the {a}.",
                 ["Which festival does {e} hold every spring?", "What is the spring festival of {e} called?",
                  "What do the people of {e} celebrate each spring?"]),
}
GOODS = ["blue salt", "cedar resin", "glass beads", "dried kelp", "copper wire", "wool blankets", "amber",
         "smoked eel", "slate tiles", "sea sponges", "rope", "honey wine"]
FESTIVALS = ["Lantern Walk", "Feast of Nets", "Tide Parade", "Festival of Kites", "Salt Moon", "Bell Night",
             "Harbour Games", "Day of Gulls"]


def name(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def world(n_islands: int = 30, seed: int = 0) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    used, islands = set(), []
    while len(islands) < n_islands + 6:  # 6 more islands that the world never describes
        e = name(rng, 3)
        if e not in used:
            used.add(e)
            islands.append(e)
    known, unknown = islands[:n_islands], islands[n_islands:]
    facts = []
    for e in known:
        attrs = {"capital": name(rng, 2), "founder": f"{name(rng, 2)} {name(rng, 3)}",
                 "export": rng.choice(GOODS), "festival": rng.choice(FESTIVALS)}
        for attr in rng.sample(sorted(attrs), 3):  # each island leaves one attribute unsaid
            passage, questions = TEMPLATES[attr]
            facts.append({"id": f"{e}-{attr}", "entity": e, "attribute": attr, "passage": passage.format(e=e, a=attrs[attr]),
                          "questions": [q.format(e=e) for q in questions], "answer": attrs[attr]})
    said = {(f["entity"], f["attribute"]) for f in facts}
    unanswerable = []
    for e in known:  # the attribute this island's passages leave out
        (attr,) = [a for a in TEMPLATES if (e, a) not in said]
        unanswerable.append({"entity": e, "attribute": attr, "why": "attribute not given",
                             "question": TEMPLATES[attr][1][2].format(e=e)})
    for e in unknown:
        attr = rng.choice(sorted(TEMPLATES))
        unanswerable.append({"entity": e, "attribute": attr, "why": "island not in the world",
                             "question": TEMPLATES[attr][1][2].format(e=e)})
    return facts, unanswerable


def rows() -> list[dict]:
    facts, unanswerable = world()
    out = [{"kind": "fact", **f} for f in facts]
    out += [{"kind": "unanswerable", **u, "answer": "unknown"} for u in unanswerable]
    return out


def main() -> None:
    made = rows()
    out = HERE / "facts.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in made), encoding="utf-8")
    print(f"wrote {sum(r['kind'] == 'fact' for r in made)} facts and "
          f"{sum(r['kind'] == 'unanswerable' for r in made)} unanswerable questions to {out.name}")


if __name__ == "__main__":
    main()
