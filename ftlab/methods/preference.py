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
