"""Cutting a release: the union of chosen snapshots' curated files, made whole per repository, plus commit samples."""
