"""Preference tuning from scratch (notebook 14): answer log-probabilities, the DPO loss, a repetition metric.

``dpo_loss`` is the loss of Rafailov et al. 2023 (eq. 7), the "sigmoid" loss of TRL's DPOTrainer; the
two are checked against each other on a batch in tests/test_preference.py.
"""

import torch
import torch.nn.functional as F


def answer_logprob(logits: torch.Tensor, input_ids: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Sum of log p(token | tokens before it) over the answer tokens of each row.

    ``answer_mask`` is 1 on answer tokens, 0 on the prompt and padding: the prompt is context, not something
    the model is rewarded for. Logits at position t predict token t + 1, hence the shift.
    """
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token_logp = logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token_logp * answer_mask[:, 1:]).sum(dim=1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``-log σ(β·[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))])``, averaged over pairs.

    Returns the loss and the implicit rewards β·(log π − log π_ref) of the chosen and rejected answers
    (what TRL logs as rewards/chosen and rewards/rejected; their difference is rewards/margins).
    """
    chosen_reward = beta * (policy_chosen - ref_chosen)
    rejected_reward = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(chosen_reward - rejected_reward).mean()
    return loss, chosen_reward.detach(), rejected_reward.detach()


def repeated_ngram_rate(text: str, n: int = 3) -> float:
    """Share of a text's word n-grams that already occurred earlier in it: 0 for no repetition, → 1 for a loop."""
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1 - len(set(grams)) / len(grams)


# --- data formats (notebook 14, section 1) -------------------------------------------------------------------------

ALPACA = "### Instruction:\n{prompt}\n\n### Response:\n"  # the plain-text layout of the Alpaca data (Taori et al. 2023)


def formats(row: dict, tokenizer) -> dict:
    """One preference row in the three layouts of notebook 14: Alpaca text, chat messages, a preference pair.

    The pair keeps the prompt out of ``chosen`` and ``rejected``: trainers join prompt + answer themselves, and an
    answer that repeats the prompt makes the prompt tokens count as "answer" in the loss.
    """
    messages = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["chosen"]}]
    chat_prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    return {"alpaca": ALPACA.format(prompt=row["prompt"]) + row["chosen"] + tokenizer.eos_token,
            "messages": messages,
            "chat": tokenizer.apply_chat_template(messages, tokenize=False),
            "pair": {"prompt": chat_prompt, "chosen": row["chosen"], "rejected": row["rejected"]}}


def sft_example(tokenizer, prompt_text: str, answer: str, eos: bool = True) -> dict:
    """Token ids of ``prompt_text + answer`` (+ the end token when ``eos``) and the mask of the answer tokens.

    The layout TRL's SFTTrainer builds for a prompt–completion row, pre-tokenized so the end token can be left out
    on purpose (the pitfall of notebook 14, section 2).
    """
    p = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    a = tokenizer(answer + (tokenizer.eos_token if eos else ""), add_special_tokens=False)["input_ids"]
    return {"input_ids": p + a, "completion_mask": [0] * len(p) + [1] * len(a)}


@torch.no_grad()
def generate(model, tokenizer, prompt_texts: list[str], max_new_tokens: int = 32, batch_size: int = 16,
             **generation) -> list[dict]:
    """Greedy continuations of already formatted prompts: the answer text, whether it stopped, its length.

    ``stopped`` is True when the model emitted its end token within ``max_new_tokens``; ``new_tokens`` counts the
    tokens up to and including it. Extra keyword arguments go to ``model.generate`` (``repetition_penalty``,
    ``no_repeat_ngram_size`` …).
    """
    model.eval()
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out = []
    try:
        for i in range(0, len(prompt_texts), batch_size):
            enc = tokenizer(prompt_texts[i:i + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=eos, **generation)[:, enc["input_ids"].shape[1]:]
            for row in ids.tolist():
                stopped = eos in row
                row = row[:row.index(eos) + 1] if stopped else row
                out.append({"text": tokenizer.decode(row, skip_special_tokens=True).strip(), "stopped": stopped,
                            "new_tokens": len(row)})
    finally:
        tokenizer.padding_side = side
    return out


# --- answer log-probabilities of a batch of pairs and the scores a reward model gives ------------------------------

@torch.no_grad()
def sequence_logprobs(model, tokenizer, prompt_texts: list[str], answers: list[str], batch_size: int = 16,
                      eos: bool = True) -> torch.Tensor:
    """``answer_logprob`` of ``answer + end token`` (``eos=False``: without it) after each prompt, batched with right
    padding: shape (N,). The difference of the two is log p(end token | prompt + answer): does the model stop there?"""
    model.eval()
    device = next(model.parameters()).device
    rows = [sft_example(tokenizer, p, a, eos=eos) for p, a in zip(prompt_texts, answers)]
    out = []
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        width = max(len(r["input_ids"]) for r in chunk)
        pad = lambda seq, v: seq + [v] * (width - len(seq))  # noqa: E731
        ids = torch.tensor([pad(r["input_ids"], tokenizer.pad_token_id) for r in chunk], device=device)
        attn = torch.tensor([pad([1] * len(r["input_ids"]), 0) for r in chunk], device=device)
        mask = torch.tensor([pad(r["completion_mask"], 0) for r in chunk], device=device)
        out.append(answer_logprob(model(input_ids=ids, attention_mask=attn).logits, ids, mask).cpu())
    return torch.cat(out)


@torch.no_grad()
def reward_scores(model, tokenizer, texts: list[str], batch_size: int = 16) -> torch.Tensor:
    """The scalar a sequence-classification reward model (one label) gives each full text: shape (N,)."""
    model.eval()
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    try:
        out = [model(**tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True,
                                 add_special_tokens=False).to(device)).logits[:, 0].float().cpu()
               for i in range(0, len(texts), batch_size)]
    finally:
        tokenizer.padding_side = side
    return torch.cat(out)


# --- intervals -----------------------------------------------------------------------------------------------------

def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default); better than ±1.96·se near 0 or 1 and for small n."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / (1 + z * z / n)
    return centre - half, centre + half


def win_rate(scores_a, scores_b) -> dict:
    """Share of rows where ``a`` scores above ``b`` (a tie counts one half), with a Wilson 95 % interval."""
    a, b = torch.as_tensor(scores_a, dtype=torch.float64), torch.as_tensor(scores_b, dtype=torch.float64)
    wins, ties = int((a > b).sum()), int((a == b).sum())
    rate = (wins + 0.5 * ties) / len(a)
    low, high = wilson(wins + 0.5 * ties, len(a))
    return {"win rate": rate, "low": low, "high": high, "wins": wins, "ties": ties, "n": len(a)}


def mean_interval(values, z: float = 1.96) -> tuple[float, float, float]:
    """Mean and its normal 95 % interval (mean ± z·sd/√n)."""
    v = torch.as_tensor(values, dtype=torch.float64)
    se = v.std(unbiased=True) / len(v) ** 0.5 if len(v) > 1 else torch.tensor(float("inf"))
    m = v.mean()
    return float(m), float(m - z * se), float(m + z * se)


def resident_parameter_mb(*models) -> float:
    """Megabytes of parameter and buffer storage the given models hold, each tensor storage counted once.

    A PEFT model whose reference is "the base with the adapter switched off" shares every base weight, so it
    adds only the adapter; a deep copy as reference doubles the count.
    """
    seen, total = set(), 0
    for model in models:
        if model is None:
            continue
        for t in list(model.parameters()) + list(model.buffers()):
            key = (t.untyped_storage().data_ptr(), t.device)
            if key not in seen:
                seen.add(key)
                total += t.untyped_storage().nbytes()
    return total / 2**20
