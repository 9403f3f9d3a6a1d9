"""LLM quality scoring, the core of Seed-Coder's curation: an oracle rates a sample, a small scorer learns the
ratings, the scorer rates every file, and the files below its threshold are dropped.

A scorer is a version (``models/scorer/{version}/``, :mod:`training.quality.versions`), made when asked:
``oracle_label`` (stratified sample of a snapshot + oracle ratings) -> ``train_scorer`` (``--version V``).
Every month, with the pinned version: ``score`` -> ``quality_filter`` (``--snapshot S``).
"""
