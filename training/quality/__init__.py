"""LLM quality scoring, the core of Seed-Coder's curation: an oracle rates a sample, a small scorer learns the
ratings, the scorer rates every file, and the bottom share is dropped.

Stages (each ``python -m training.quality.<stage> --snapshot S``):
``oracle_label`` (stratified sample + oracle ratings) -> ``train_scorer`` -> ``score`` -> ``quality_filter``.
"""
