"""Preference tuning (notebook 14): the from-scratch DPO loss equals TRL's on a batch, the answer log-prob
counts answer tokens only, the repetition metric, and the project's preference pairs."""

import copy
import math

import pytest
import torch

import ftlab
from ftlab.methods.preference import answer_logprob, dpo_loss, repeated_ngram_rate


def test_dpo_loss_is_log2_when_policy_equals_reference():
    lp = torch.tensor([-3.0, -7.5])
    loss, chosen, rejected = dpo_loss(lp, lp - 1, lp, lp - 1, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2))
    assert chosen.abs().max() == 0 and rejected.abs().max() == 0


def test_dpo_loss_by_hand():
    # chosen log-ratio +2, rejected log-ratio -1, β 0.5: -log σ(0.5·3)
    loss, chosen, rejected = dpo_loss(torch.tensor([-1.0]), torch.tensor([-6.0]), torch.tensor([-3.0]),
                                      torch.tensor([-5.0]), beta=0.5)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-1.5))))
    assert (chosen.item(), rejected.item()) == (1.0, -0.5)


def test_answer_logprob_counts_answer_tokens_only():
    logits = torch.zeros(1, 4, 3)
    logits[0, 2, 1] = math.log(2)  # position 2 predicts token 3: p(token 1) = 2/4
    ids = torch.tensor([[0, 2, 2, 1]])
    mask = torch.tensor([[0, 0, 0, 1]])  # only the last token is answer
    assert answer_logprob(logits, ids, mask).item() == pytest.approx(math.log(0.5))
    # every token but the first (nothing predicts it): two uniform positions and the 2/4 one
    assert answer_logprob(logits, ids, torch.ones_like(mask)).item() == pytest.approx(2 * math.log(1 / 3) + math.log(0.5))


def test_from_scratch_dpo_matches_trl_on_a_batch(tmp_path):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    model, tok = ftlab.load_model("tiny-smollm2", task="causal-lm", seed=0)
    ref = copy.deepcopy(model)
    torch.manual_seed(0)
    with torch.no_grad():  # move the policy off the reference, or every log-ratio is 0 and any loss is log 2
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    rows = ftlab.load_dataset("preferences")["train"].select(range(4))
    ds = Dataset.from_dict({k: rows[k] for k in ("prompt", "chosen", "rejected")})
    args = DPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, beta=0.1, report_to=[], use_cpu=True,
                     max_length=128)
    trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=ds, processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))  # rows 0-3 chosen, 4-7 rejected
    model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, batch)
        ids, attn, answer = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
        policy = answer_logprob(model(input_ids=ids, attention_mask=attn).logits, ids, answer)
        reference = answer_logprob(ref(input_ids=ids, attention_mask=attn).logits, ids, answer)
    ours, _, _ = dpo_loss(*policy.chunk(2), *reference.chunk(2), beta=0.1)
    assert abs(ours.item() - math.log(2)) > 1e-3  # the check means something
    torch.testing.assert_close(ours, trl_loss.float(), rtol=1e-5, atol=1e-6)


def test_repeated_ngram_rate():
    assert repeated_ngram_rate("the cat sat on the mat") == 0.0
    assert repeated_ngram_rate("a b a b a b", n=2) == pytest.approx(1 - 2 / 5)
    assert repeated_ngram_rate("too short", n=3) == 0.0


def test_preference_pairs_keep_the_prompt_out_and_the_instruction_splits():
    prefs = ftlab.load_dataset("preferences")
    instr = ftlab.load_dataset("instructions")
    for split in ("train", "validation", "test"):
        assert prefs[split]["prompt"] == instr[split]["prompt"]  # no held-out prompt was trained on
        assert prefs[split]["chosen"] == instr[split]["response"]
    for row in prefs["train"]:
        assert row["chosen"] != row["rejected"]
        assert row["prompt"] not in row["chosen"] and row["prompt"] not in row["rejected"]
    kinds = set(prefs["test"]["kind"])
    assert kinds == {"wrong", "repetitive"}
