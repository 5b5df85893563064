"""Domain adaptation pieces: gradient reversal (DANN), masked-LM continued pretraining, vocabulary extension.

Taught in notebook 13 (领域自适应). Everything here knows torch / transformers only: no plotting, no ftlab
training loop. Names follow the papers: ``GradientReversal`` and the ``λ`` schedule from Ganin & Lempitsky
(2015, "Unsupervised Domain Adaptation by Backpropagation"); masked-LM continued pretraining as in Gururangan
et al. (2020, "Don't Stop Pretraining").
"""

from __future__ import annotations

import collections
import math

import torch
from torch import nn

from .pooling import mean_pool


# ---------------------------------------------------------------- gradient reversal (梯度反转层)
class _GradReverse(torch.autograd.Function):
    """Identity on the way forward; the gradient times ``-λ`` on the way back."""

    @staticmethod
    def forward(ctx, x, lambda_):
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.lambda_ * grad, None  # no gradient for λ


def grad_reverse(x: torch.Tensor, lambda_: float = 1.0) -> torch.Tensor:
    return _GradReverse.apply(x, float(lambda_))


class GradientReversal(nn.Module):
    """A layer for ``nn.Sequential``: ``forward(x) = x``, ``∂/∂x = -λ·grad`` (Ganin & Lempitsky 2015, section 3)."""

    def __init__(self, lambda_: float = 1.0):
        super().__init__()
        self.lambda_ = lambda_

    def forward(self, x):
        return grad_reverse(x, self.lambda_)


def dann_lambda(progress: float, lambda_max: float = 1.0, gamma: float = 10.0) -> float:
    """Ganin & Lempitsky's schedule: λ grows from 0 to ``lambda_max`` as training ``progress`` goes 0 → 1,
    ``λ_p = lambda_max · (2 / (1 + exp(-γ p)) - 1)``, so the early, noisy domain signal is damped."""
    return lambda_max * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


class DomainClassifier(nn.Module):
    """Pooled features → gradient reversal → small MLP → source (0) / target (1)."""

    def __init__(self, hidden: int, width: int = 128):
        super().__init__()
        self.reverse = GradientReversal(0.0)
        self.net = nn.Sequential(nn.Linear(hidden, width), nn.ReLU(), nn.Linear(width, 2))

    def forward(self, features, lambda_: float):
        self.reverse.lambda_ = lambda_
        return self.net(self.reverse(features))  # (B, 2)


def pooled(classifier, input_ids, attention_mask) -> torch.Tensor:
    """The mean-pooled features a ``PooledClassifier`` puts its head on, (B, H)."""
    hidden = classifier.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return mean_pool(hidden, attention_mask)


def train_steps(classifier, batches, lr: float, steps: int, target_batches=None, domain_head=None,
                lambda_max: float = 0.0, on_step=None) -> dict:
    """AdamW with linear warm-up (10 %) and decay. Source batches carry ``labels``; with ``domain_head``,
    each step also reads one unlabelled ``target_batches`` batch and adds the domain loss through gradient
    reversal (DANN). Without it, this is plain fine-tuning (the source-only baseline). Returns the losses."""
    params = [p for p in classifier.parameters() if p.requires_grad]
    if domain_head is not None:
        params += list(domain_head.parameters())
    opt = torch.optim.AdamW(params, lr=lr)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
    log = {"task loss": [], "domain loss": [], "domain accuracy": [], "lambda": []}
    classifier.train()
    if domain_head is not None:
        domain_head.train()
    for step in range(steps):
        src = next(batches)
        n_src = len(src["labels"])
        ids, mask = src["input_ids"], src["attention_mask"]
        if domain_head is not None:   # one forward pass over source + target rows: (B_s + B_t, T)
            tgt = next(target_batches)
            ids, mask = _stack(ids, tgt["input_ids"]), _stack(mask, tgt["attention_mask"])
        feats = pooled(classifier, ids, mask)                                          # (B_s [+ B_t], H)
        logits = classifier.head(classifier.dropout(feats[:n_src]))                    # (B_s, C)
        loss = nn.functional.cross_entropy(logits, src["labels"])
        log["task loss"].append(loss.item())
        if domain_head is not None:
            lam = dann_lambda(step / max(1, steps - 1), lambda_max)
            domain = (torch.arange(len(feats)) >= n_src).long()                        # 0 source, 1 target
            d_logits = domain_head(feats, lam)                                         # (B_s + B_t, 2)
            d_loss = nn.functional.cross_entropy(d_logits, domain)
            loss = loss + d_loss   # the reversal inside domain_head makes the encoder *maximise* d_loss (× λ)
            log["domain loss"].append(d_loss.item())
            log["domain accuracy"].append((d_logits.argmax(-1) == domain).float().mean().item())
            log["lambda"].append(lam)
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        if on_step is not None:
            on_step(step)
    classifier.eval()
    return log


# ---------------------------------------------------------------- batches and evaluation
def _stack(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two right-padded (B, T) tensors as one (B_a + B_b, max T), padded with 0 (masked anyway)."""
    width = max(a.shape[1], b.shape[1])
    return torch.cat([nn.functional.pad(x, (0, width - x.shape[1])) for x in (a, b)])


def batch_stream(encodings, batch_size: int, seed: int, pad_id: int, with_labels: bool = True):
    """Endless shuffled batches (a new order each epoch, from ``seed``) of token-id lists, padded per batch."""
    g = torch.Generator().manual_seed(seed)
    n = len(encodings["input_ids"])
    batch_size = min(batch_size, n)
    while True:
        order = torch.randperm(n, generator=g).tolist()
        for start in range(0, n - batch_size + 1, batch_size):
            rows = order[start:start + batch_size]
            batch = pad([encodings["input_ids"][i] for i in rows], pad_id)
            if with_labels:
                batch["labels"] = torch.tensor([encodings["labels"][i] for i in rows])
            yield batch


def pad(id_lists, pad_id: int) -> dict:
    """Right-pad lists of token ids into ``input_ids`` and ``attention_mask`` tensors, (B, T_max)."""
    width = max(len(x) for x in id_lists)
    ids = torch.full((len(id_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(id_lists), width), dtype=torch.long)
    for i, x in enumerate(id_lists):
        ids[i, :len(x)] = torch.tensor(x)
        mask[i, :len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def features(classifier, id_lists, pad_id: int, batch_size: int = 64) -> torch.Tensor:
    """Mean-pooled features of every text, (N, H); rows are sorted by length for batching (less padding)
    and returned in the original order."""
    classifier.eval()
    order = sorted(range(len(id_lists)), key=lambda i: len(id_lists[i]))
    out = [None] * len(id_lists)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        b = pad([id_lists[i] for i in rows], pad_id)
        for i, f in zip(rows, pooled(classifier, b["input_ids"], b["attention_mask"])):
            out[i] = f
    return torch.stack(out)


@torch.no_grad()
def predict(classifier, id_lists, pad_id: int) -> torch.Tensor:
    """Predicted class per text (the head on the pooled features, no dropout), (N,)."""
    return classifier.head(features(classifier, id_lists, pad_id)).argmax(-1)


# ---------------------------------------------------------------- masked-LM continued pretraining (继续预训练)
def mlm_model(backbone):
    """A ``BertForMaskedLM`` around ``backbone``'s weights. The MLM head's transform (dense + LayerNorm) is
    freshly initialised — sentence encoders such as all-MiniLM-L6-v2 ship without one — and its decoder is
    tied to the word embeddings, so predicting a word reuses that word's input vector."""
    from transformers import BertForMaskedLM

    model = BertForMaskedLM(backbone.config)
    result = model.bert.load_state_dict(backbone.state_dict(), strict=False)
    assert not result.missing_keys, result.missing_keys     # only the unused pooler is left out
    model.tie_weights()
    return model


def mask_tokens(input_ids, attention_mask, tokenizer, prob: float = 0.15, generator=None):
    """BERT's recipe: pick ``prob`` of the real, non-special tokens as targets; of those 80 % become [MASK],
    10 % a random token, 10 % stay. Returns ``(masked_ids, labels)`` with -100 where nothing is predicted."""
    ids, labels = input_ids.clone(), input_ids.clone()
    special = torch.tensor([[t in tokenizer.all_special_ids for t in row] for row in input_ids.tolist()])
    chosen = (torch.rand(ids.shape, generator=generator) < prob) & attention_mask.bool() & ~special
    labels[~chosen] = -100
    r = torch.rand(ids.shape, generator=generator)
    ids[chosen & (r < 0.8)] = tokenizer.mask_token_id
    swap = chosen & (r >= 0.8) & (r < 0.9)
    ids[swap] = torch.randint(len(tokenizer), (int(swap.sum()),), generator=generator)
    return ids, labels


def _mlm_parts(model):
    """(encoder, prediction head) of a masked-LM model, also inside a PEFT wrapper: BERT names them
    ``bert`` / ``cls``, RoBERTa ``roberta`` / ``lm_head``."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = inner.cls if hasattr(inner, "cls") else inner.lm_head
    return inner.base_model, head


def mlm_loss(model, input_ids, attention_mask, labels) -> torch.Tensor:
    """Masked-LM cross-entropy with the vocabulary projection computed at the masked positions only
    (~15 % of tokens): the 384 × 30 k decoder is most of an MLM step's cost if run on every position."""
    encoder, head = _mlm_parts(model)
    hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state   # (B, T, H)
    where = labels != -100
    logits = head(hidden[where])                                                            # (M, V)
    return nn.functional.cross_entropy(logits, labels[where])


@torch.no_grad()
def heldout_mlm_loss(model, id_lists, tokenizer, seed: int = 0, batch_size: int = 64, only=None) -> float:
    """Mean masked-LM loss on fixed masks (same ``seed``, same positions) over the texts: comparable across
    checkpoints of one tokenizer. With ``only`` (token ids), every occurrence of those ids is masked and
    predicted, nothing else: how well the model guesses those words from their context."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for start in range(0, len(id_lists), batch_size):
        b = pad(id_lists[start:start + batch_size], tokenizer.pad_token_id)
        if only is None:
            ids, labels = mask_tokens(b["input_ids"], b["attention_mask"], tokenizer, generator=g)
        else:
            hit = torch.isin(b["input_ids"], torch.tensor(list(only)))
            ids = b["input_ids"].masked_fill(hit, tokenizer.mask_token_id)
            labels = b["input_ids"].masked_fill(~hit, -100)
        n = int((labels != -100).sum())
        if n:
            total += mlm_loss(model, ids, b["attention_mask"], labels).item() * n
            count += n
    return total / count if count else float("nan")


def train_mlm(model, id_lists, tokenizer, lr: float, steps: int, batch_size: int, seed: int = 0,
              on_step=None) -> list[float]:
    """Continued pretraining: masked-LM steps on (unlabelled) texts. Trains whatever requires gradients."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    g = torch.Generator().manual_seed(seed)
    stream = batch_stream({"input_ids": id_lists}, batch_size, seed, tokenizer.pad_token_id, with_labels=False)
    losses = []
    model.train()
    for step in range(steps):
        b = next(stream)
        ids, labels = mask_tokens(b["input_ids"], b["attention_mask"], tokenizer, generator=g)
        loss = mlm_loss(model, ids, b["attention_mask"], labels)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step)
    model.eval()
    return losses


# ---------------------------------------------------------------- vocabulary extension (词表扩展)
def split_words(tokenizer, texts, min_pieces: int = 3, top: int = 30) -> list[tuple[str, int, list[str]]]:
    """The ``top`` most frequent alphabetic words of ``texts`` that ``tokenizer`` splits into at least
    ``min_pieces`` sub-words: ``(word, count, pieces)``, most frequent first (ties alphabetically)."""
    pre = tokenizer.backend_tokenizer.pre_tokenizer
    counts = collections.Counter(w for t in texts for w, _ in pre.pre_tokenize_str(t.lower()) if w.isalpha())
    rows = [(w, c, tokenizer.tokenize(w)) for w, c in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]
    return [r for r in rows if len(r[2]) >= min_pieces][:top]


def add_terms(tokenizer, words) -> tuple[list[int], dict[int, list[int]]]:
    """Add ``words`` as whole-word tokens. Returns the new ids and, for each, the ids of the sub-words the
    tokenizer used for it before (what ``init_new_rows`` averages)."""
    from tokenizers import AddedToken

    old = {w: tokenizer(w, add_special_tokens=False)["input_ids"] for w in words}
    tokenizer.add_tokens([AddedToken(w, single_word=True) for w in words])
    new_ids = tokenizer.convert_tokens_to_ids(list(words))
    return new_ids, {i: old[w] for i, w in zip(new_ids, words)}


@torch.no_grad()
def init_new_rows(embedding: nn.Embedding, pieces: dict[int, list[int]]) -> None:
    """Each new row := the mean of the rows of its old sub-words (its meaning, roughly, before it had a
    token of its own). The embedding must already be resized."""
    for new_id, old_ids in pieces.items():
        embedding.weight[new_id] = embedding.weight[old_ids].mean(0)


def tokens_per_text(tokenizer, texts) -> float:
    """Mean number of tokens per text, special tokens excluded."""
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts) / len(texts)
