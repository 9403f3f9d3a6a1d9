"""Pretraining: Llama-structured code models trained with DeepSpeed on a release's packed token shards.

Stage ``pretrain``: ``python -m training.pretrain --release R`` (see :mod:`training.pretrain.stage`).
"""
