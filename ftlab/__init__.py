"""ftlab: the helper package behind the fine-tuning notebooks.

Notebooks import this face only: ``import ftlab as fl`` then ``P = fl.setup()``, ``fl.load_model(...)``,
``fl.load_dataset(...)``, ``fl.train(...)``, ``fl.plot_history(...)``.
"""

from .version import __version__

from .data import DATASETS, load_dataset
from .env import PROFILES, Profile, get_profile, pick_device, quiet, seed_everything, setup
from .errors import FtlabError
from .evaluation import classify_texts, evaluate_classifier, evaluate_lm, generate, predict
from .experiment import finetune_classifier, table
from .history import History
from .metrics import accuracy, classification_metrics, f1, majority_baseline, perplexity, rouge
from .models import (MODELS, ParamCount, count_parameters, load_model, load_tokenizer, model_path,
                     size_on_disk_mb)
from .plot import plot_bars, plot_history, plot_sweep
from .preprocess import (classification_collator, format_prompt, require_columns, sft_collator,
                         tokenize_classification, tokenize_sft)
from .results import load_results, record_result
from .train import TrainConfig, TrainingInterrupted, train
