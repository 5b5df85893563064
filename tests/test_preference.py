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


def test_formats_and_sft_example_keep_the_end_token_and_the_prompt_apart():
    from ftlab.methods.preference import ALPACA, formats, sft_example

    tok = ftlab.load_tokenizer("tiny-smollm2")
    row = ftlab.load_dataset("preferences")["train"][0]
    f = formats(row, tok)
    assert f["alpaca"] == ALPACA.format(prompt=row["prompt"]) + row["chosen"] + tok.eos_token
    assert f["chat"].startswith(f["pair"]["prompt"]) and row["chosen"] in f["chat"]
    assert f["pair"]["chosen"] == row["chosen"] and row["prompt"] not in f["pair"]["rejected"]
    with_eos, without = sft_example(tok, f["pair"]["prompt"], row["chosen"]), sft_example(tok, f["pair"]["prompt"],
                                                                                            row["chosen"], eos=False)
    assert with_eos["input_ids"] == without["input_ids"] + [tok.eos_token_id]
    assert sum(with_eos["completion_mask"]) == sum(without["completion_mask"]) + 1
    assert with_eos["completion_mask"][:len(tok(f["pair"]["prompt"])["input_ids"])] == [0] * len(tok(f["pair"]["prompt"])["input_ids"])


def test_sequence_logprobs_equals_answer_logprob_row_by_row():
    from ftlab.methods.preference import sequence_logprobs, sft_example

    model, tok = ftlab.load_model("tiny-smollm2", task="causal-lm", seed=0)
    prompts, answers = ["What is 2 plus 2?", "Reverse: a b c"], ["2 plus 2 is 4.", "c b a c b a c b a"]
    batched = sequence_logprobs(model, tok, prompts, answers, batch_size=2)  # right padding in one batch
    for i, (p, a) in enumerate(zip(prompts, answers)):
        r = sft_example(tok, p, a)
        ids, mask = torch.tensor([r["input_ids"]]), torch.tensor([r["completion_mask"]])
        with torch.no_grad():
            alone = answer_logprob(model(input_ids=ids).logits, ids, mask)
        torch.testing.assert_close(batched[i:i + 1], alone, rtol=1e-5, atol=1e-4)
    without_end = sequence_logprobs(model, tok, prompts, answers, batch_size=2, eos=False)
    assert (batched < without_end).all()  # one more token, a log-probability below 0: the sum falls


def test_generate_reports_stopping_and_length():
    from ftlab.methods.preference import generate

    model, tok = ftlab.load_model("tiny-smollm2", task="causal-lm", seed=0)
    out = generate(model, tok, ["Hello", "What is 2 plus 2?"], max_new_tokens=5)
    assert len(out) == 2 and all(0 < o["new_tokens"] <= 5 for o in out)
    assert all(o["new_tokens"] == 5 for o in out if not o["stopped"])
    # every token but the end token suppressed: each row must stop at its first step
    forced = generate(model, tok, ["Hello"], max_new_tokens=5, suppress_tokens=[i for i in range(len(tok))
                                                                               if i != tok.eos_token_id])
    assert forced == [{"text": "", "stopped": True, "new_tokens": 1}]


def test_wilson_win_rate_mean_interval():
    from ftlab.methods.preference import mean_interval, wilson, win_rate

    low, high = wilson(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and wilson(10, 10)[1] == pytest.approx(1.0)
    w = win_rate([3.0, 1.0, 2.0, 0.0], [1.0, 1.0, 3.0, -1.0])
    assert (w["wins"], w["ties"], w["win rate"]) == (2, 1, 0.625)
    m, lo, hi = mean_interval([1.0, 2.0, 3.0])
    assert m == 2.0 and hi - m == pytest.approx(1.96 * 1.0 / math.sqrt(3))


def test_resident_parameter_mb_counts_shared_storage_once():
    from ftlab.methods.preference import resident_parameter_mb

    model, _ = ftlab.load_model("tiny-smollm2", task="causal-lm", seed=0)
    one = resident_parameter_mb(model)
    assert resident_parameter_mb(model, model) == one
    assert resident_parameter_mb(model, copy.deepcopy(model)) == pytest.approx(2 * one)
    assert resident_parameter_mb(model, None) == one


def test_reward_scores_read_the_last_real_token():
    from ftlab.methods.preference import reward_scores

    model, tok = ftlab.load_model("tiny-smollm2", task="classification", labels=["reward"], seed=0)
    texts = ["short", "a much longer text than the first one"]
    both = reward_scores(model, tok, texts)
    alone = torch.cat([reward_scores(model, tok, [t]) for t in texts])
    assert both.shape == (2,)
    torch.testing.assert_close(both, alone, rtol=1e-5, atol=1e-5)
