"""Fine-tuning methods; each module knows torch/PEFT only (never train.py or plot.py)."""
