"""The library API that ftlab and the notebooks stand on. These APIs move fast (transformers caches, PEFT
configs, TRL trainers): when an upgrade removes or renames something, this file fails first, with the
name of what moved, instead of a notebook failing deep inside a cell.

`tools/check_drift.sh` runs this file against the floor versions in pyproject.toml; `make test` runs it
against whatever is installed (the latest, on a fresh machine).
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


def test_gguf_loading_is_supported():
    from transformers import AutoModelForCausalLM

    src = inspect.getsource(AutoModelForCausalLM.from_pretrained.__func__) if hasattr(
        AutoModelForCausalLM.from_pretrained, "__func__") else ""
    import transformers.modeling_utils as mu

    assert "gguf_file" in src or "gguf_file" in inspect.getsource(mu.PreTrainedModel.from_pretrained)
    importlib.import_module("gguf")
