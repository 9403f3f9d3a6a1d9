"""Near-duplicate removal with MinHash LSH, at repository level then file level (``python -m spark_jobs.near_dedup``).

Modules: ``shingles`` (code-aware word n-grams), ``minhash`` (datasketch-compatible signatures, band keys,
S-curve), ``graph`` (bucket pairs, union-find), ``components`` (Spark large-star/small-star), ``local`` (the
single-process engine), ``spark`` (the Spark engine), ``stage`` (lake I/O and stats), ``index`` (incremental).
"""
