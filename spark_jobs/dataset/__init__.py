"""Dataset build: turn a release into pretraining data, as the Seed-Coder report describes.

``tokenizer`` trains (or pins) the release's byte-level BPE; ``build`` (stage ``dataset_build``) makes file-level,
repository-level and commit documents, decontaminates them, applies SPM FIM, tokenizes and packs them into token
shards (:mod:`lake.token_shards`). The pure pieces live in their own modules: ``documents`` (the document model and
its serialisations), ``imports`` (dependency graphs), ``repo_concat``, ``fim``, ``commits`` and ``packing``.
"""
