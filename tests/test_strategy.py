"""strategy.recommend, rule by rule, and the adaptive freezing share."""

import pytest

import ftlab as fl
from ftlab import strategy

B = 1e9


def test_freeze_share_thresholds():
    assert strategy.freeze_share(0.9) == 0.7 and strategy.freeze_share(0.81) == 0.7
    assert strategy.freeze_share(0.8) == 0.4 and strategy.freeze_share(0.6) == 0.4
    assert strategy.freeze_share(0.5) == 0.2 and strategy.freeze_share(0.0) == 0.2
    with pytest.raises(fl.FtlabError):
        strategy.freeze_share(1.5)


def test_analysis_means_probing():
    assert strategy.recommend(80, 7 * B, goal="analysis").method == "probing"


def test_many_tasks_means_adapters():
    assert strategy.recommend(80, 0.5 * B, n_tasks=5).method == "adapters"


def test_small_gpu_means_lora_or_qlora():
    small = strategy.recommend(6, 0.5 * B)  # 0.5 B in bf16 = 1 GB of weights: LoRA fits
    assert small.method == "LoRA" and "6 GB" in small.reasons[0]
    seven = strategy.recommend(6, 7 * B)  # 14 GB of bf16 weights do not fit 6 GB: quantise
    assert seven.method == "QLoRA" and seven.memory_mib["total"] < 6e9 / 2**20


def test_full_when_it_does_not_fit_goes_lora():
    assert strategy.recommend(24, 7 * B).method == "LoRA"  # full 7 B needs ~104 GiB


def test_close_domain_means_freezing_with_the_adaptive_share():
    r = strategy.recommend(80, 0.5 * B, domain_similarity=0.9)
    assert r.method == "freezing" and "70%" in r.reasons[0]


def test_plenty_of_memory_distant_task_and_data_means_full():
    r = strategy.recommend(80, 0.5 * B, domain_similarity=0.2, data_size=50_000)
    assert r.method == "full fine-tuning"
    assert r.memory_mib["total"] == pytest.approx(0.5 * B * 16 / 2**20)  # 16 bytes per parameter


def test_little_data_prefers_lora():
    assert strategy.recommend(80, 0.5 * B, domain_similarity=0.2, data_size=500).method == "LoRA"


def test_bad_input_is_a_clear_error():
    with pytest.raises(fl.FtlabError, match="goal"):
        strategy.recommend(8, B, goal="chat")
    with pytest.raises(fl.FtlabError, match="positive"):
        strategy.recommend(0, B)
