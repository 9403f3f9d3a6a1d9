"""Pretraining: Llama-structured code models trained with DeepSpeed on the packed token shards.

Stage ``pretrain``: ``python -m training.pretrain --snapshot S`` (see :mod:`training.pretrain.stage`).
"""
