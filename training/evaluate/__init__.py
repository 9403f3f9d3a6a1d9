"""The evaluation stage: HumanEval / MBPP pass@k, FIM infilling, and held-out bits per byte of a pretrained model."""
