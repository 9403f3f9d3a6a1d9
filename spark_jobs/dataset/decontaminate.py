"""Decontamination of the build's documents against the evaluation sets, on Spark.

The n-gram index is the filters' (:mod:`lake.ngrams`: word 10-grams of HumanEval, MBPP and the other sets the
config names), so the file filter and the final-document check agree on what "contaminated" means. Each
executor process builds the index once and reuses it for every batch.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _index():
    from lake.ngrams import EvalNgramIndex

    return EvalNgramIndex.from_config()


def contamination(texts) -> list[str | None]:
    """The matched evaluation set of each text, None when clean."""
    index = _index()
    out = []
    for value in texts:
        hit, name = index.contaminated(value or "")
        out.append(name if hit else None)
    return out


def flag(df, text_col):
    """``df`` plus a ``contamination`` column: the evaluation set a document overlaps, or null."""
    import pandas as pd
    from pyspark.sql import functions as F

    @F.pandas_udf("string")
    def contaminated(texts: pd.Series) -> pd.Series:
        return pd.Series(contamination(texts), dtype="object")

    return df.withColumn("contamination", contaminated(text_col))
