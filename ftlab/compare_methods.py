"""The methods ``ftlab compare`` trains, each built the same way on the profile's encoder.

One head policy for every method: the encoder's token vectors are mean-pooled over the real tokens (the
way sentence encoders such as all-MiniLM-L6-v2 were trained; their BERT pooler never was) and a linear
head, trained in every method, reads the class. What differs between methods is only what else trains.
Each builder returns a ``Built`` (the model and any callbacks or loss it needs) for a profile and seed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import FtlabError
from .methods.pooling import mean_pool
from .models import load_model, model_path


class PooledClassifier(nn.Module):
    """``backbone`` → mean over real tokens → dropout → linear head. Trains whatever in ``backbone``
    requires gradients, plus the head. Prompt methods that prepend virtual tokens are pooled over the
    real tokens only (the last ``T`` positions)."""

    def __init__(self, backbone, num_labels: int = 2):
        super().__init__()
        self.backbone = backbone
        config = getattr(backbone, "config", None)
        hidden = config.hidden_size
        self.dropout = nn.Dropout(getattr(config, "hidden_dropout_prob", 0.1))
        self.head = nn.Linear(hidden, num_labels)

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        from transformers.modeling_outputs import SequenceClassifierOutput

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        hidden = hidden[:, -input_ids.shape[1]:]  # (B, T, H): virtual tokens, if any, come first
        logits = self.head(self.dropout(mean_pool(hidden, attention_mask)))  # (B, labels)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def save_pretrained(self, path, safe_serialization: bool = True) -> None:
        """What a task needs on top of the shared base: the trainable tensors only (safetensors)."""
        from pathlib import Path

        from safetensors.torch import save_file

        Path(path).mkdir(parents=True, exist_ok=True)
        tensors = {n: p.detach().cpu().contiguous() for n, p in self.named_parameters() if p.requires_grad}
        save_file(tensors, str(Path(path) / "trainable.safetensors"))


@dataclass
class Built:
    model: nn.Module
    callbacks: list = field(default_factory=list)
    loss_fn: object = None
    note: str = ""  # what is special about this method's setup, for the report


@dataclass(frozen=True)
class Method:
    name: str
    chinese: str
    lrs: tuple  # the learning-rate grid searched on validation
    build: object  # (profile, seed, steps) -> Built


def _backbone(profile, seed):
    return load_model(profile.encoder, task="base", seed=seed)[0]


def _frozen(module):
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _peft(profile, seed, config):
    from peft import get_peft_model

    return get_peft_model(_backbone(profile, seed), config)


def full(profile, seed, steps):
    return Built(PooledClassifier(_backbone(profile, seed)))


def head_only(profile, seed, steps):
    return Built(PooledClassifier(_frozen(_backbone(profile, seed))))


def last_blocks(profile, seed, steps, n=2):
    from .methods import freeze

    backbone = _backbone(profile, seed)
    freeze.freeze(backbone, layers=n, train_head=False, verbose=False)  # n > 0: the last n blocks
    return Built(PooledClassifier(backbone), note=f"last {n} blocks + head")


def gradual(profile, seed, steps):
    from .methods import freeze

    backbone = _backbone(profile, seed)
    callback = freeze.gradual_unfreezing_callback(backbone, steps)
    return Built(PooledClassifier(backbone), [callback], note="ULMFiT: head first, then one block per stage from the top")


def adapter(profile, seed, steps):
    from .methods import adapters

    backbone = adapters.apply_adapters(_backbone(profile, seed),
                                       adapters.AdapterConfig(placement="pfeiffer", bottleneck=64, train_head=False))
    return Built(PooledClassifier(backbone), note="Pfeiffer, bottleneck 64")


def ia3(profile, seed, steps):
    from peft import IA3Config

    config = IA3Config(target_modules=["key", "value", "output.dense"], feedforward_modules=["output.dense"])
    return Built(PooledClassifier(_peft(profile, seed, config)), note="key, value, feed-forward output")


def ln_tuning(profile, seed, steps):
    from peft import LNTuningConfig

    return Built(PooledClassifier(_peft(profile, seed, LNTuningConfig(target_modules=["LayerNorm"]))))


def prompt_tuning(profile, seed, steps):
    from peft import PromptTuningConfig

    config = PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=20)
    return Built(PooledClassifier(_peft(profile, seed, config)), note="20 virtual tokens")


def p_tuning(profile, seed, steps):
    from peft import PromptEncoderConfig

    config = PromptEncoderConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=20, encoder_hidden_size=128)
    return Built(PooledClassifier(_peft(profile, seed, config)), note="20 virtual tokens, MLP encoder")


def prefix_v2(profile, seed, steps):
    from .methods.prefix import PrefixClassifier

    return Built(PrefixClassifier(_backbone(profile, seed), num_labels=2, num_virtual_tokens=20),
                 note="20 key/value prefixes per layer (ftlab.methods.prefix)")


def _lora_config(backbone, r=8):
    from .methods import lora

    return lora.lora_config(backbone, r=r, target_modules=("query", "value"), task_type="FEATURE_EXTRACTION")


def lora_qv(profile, seed, steps):
    from peft import get_peft_model

    backbone = _backbone(profile, seed)
    return Built(PooledClassifier(get_peft_model(backbone, _lora_config(backbone))), note="r 8, alpha 16, query+value")


def adalora(profile, seed, steps):
    from peft import get_peft_model

    from .methods import lora

    backbone = _backbone(profile, seed)
    peft_model = get_peft_model(backbone, lora.adalora_config(backbone, total_step=steps, init_r=12, target_r=4,
                                                              task_type="FEATURE_EXTRACTION"))
    return Built(PooledClassifier(peft_model), lora.method_callbacks(peft_model), note="rank 12 → 4, query+value")


def qlora(profile, seed, steps):
    from peft import get_peft_model, prepare_model_for_kbit_training

    from .env import seed_everything
    from .methods import quant

    seed_everything(seed)
    folder = model_path(profile.encoder)
    if Path(folder).is_dir():
        base = quant.load_quantized(folder, bits=4, task="base")
    else:  # a tiny smoke model exists only in memory: quantise a saved copy, then delete it
        with tempfile.TemporaryDirectory(prefix="ftlab-qlora-") as tmp:
            _backbone(profile, seed).save_pretrained(tmp)
            base = quant.load_quantized(tmp, bits=4, task="base")
    base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    return Built(PooledClassifier(get_peft_model(base, _lora_config(base))),
                 note="NF4 + double quantisation base, LoRA r 8 query+value, no gradient checkpointing")


def distilled(profile, seed, steps, ctx=None):
    """Every other block of the encoder as a student, trained on the labels and on the soft labels of a
    teacher fully fine-tuned (same budget, full fine-tuning's chosen rate) in the same run."""
    import copy

    from .methods import distill
    from .train import TrainConfig, train

    if ctx is None or ctx.chosen_lr("full fine-tuning") is None:
        raise FtlabError("The distilled student needs a teacher: run 'full fine-tuning' first (its rate is reused).")
    teacher_lr = ctx.chosen_lr("full fine-tuning")
    teacher = PooledClassifier(_backbone(profile, seed))
    config = TrainConfig(name=f"compare-{profile.name}-teacher-{seed}", steps=steps, batch_size=profile.batch_size,
                         lr=teacher_lr, eval_every=steps, seed=seed, live=False)
    train(teacher, ctx.tokens["train"], None, config, tokenizer=ctx.tokenizer)
    student = copy.deepcopy(teacher)
    layers = student.backbone.encoder.layer
    keep = list(range(0, len(layers), 2))  # DistilBERT's choice: every other block
    student.backbone.encoder.layer = nn.ModuleList(layers[i] for i in keep)
    student.backbone.config.num_hidden_layers = len(keep)
    loss = distill.distillation_loss(distill.DistillConfig(temperature=2.0, alpha=0.5))
    return Built(distill.Distiller(student, teacher), loss_fn=loss,
                 note=f"student: blocks {keep} of the teacher; teacher: full fine-tuning at {teacher_lr:g}; T 2, alpha 0.5")


METHODS = {m.name: m for m in [
    Method("full fine-tuning", "全参数微调", (3e-5, 1e-4, 3e-4), full),
    Method("head only", "仅训练分类头", (3e-3, 1e-2, 3e-2), head_only),
    Method("last 2 blocks", "部分参数微调", (1e-4, 3e-4, 1e-3), last_blocks),
    Method("gradual unfreezing", "逐步解冻", (1e-4, 3e-4, 1e-3), gradual),
    Method("Pfeiffer adapter", "适配器", (3e-4, 1e-3, 3e-3), adapter),
    Method("IA3", "IA3", (1e-3, 3e-3, 1e-2), ia3),
    Method("LN-tuning", "层归一化微调", (1e-3, 3e-3, 1e-2), ln_tuning),
    Method("prompt tuning", "提示微调", (3e-3, 1e-2, 3e-2), prompt_tuning),
    Method("P-tuning", "P-tuning", (1e-3, 3e-3, 1e-2), p_tuning),
    Method("P-tuning v2 (prefix)", "前缀微调", (3e-3, 1e-2, 3e-2), prefix_v2),
    Method("LoRA", "低秩适应", (5e-4, 2e-3, 5e-3), lora_qv),
    Method("AdaLoRA", "自适应低秩适应", (2e-3, 5e-3, 1e-2), adalora),
    Method("QLoRA", "量化低秩适应", (5e-4, 2e-3, 5e-3), qlora),
    Method("distilled student", "知识蒸馏", (3e-5, 1e-4, 3e-4), distilled),
]}
