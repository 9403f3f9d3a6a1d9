"""Decontamination of the build's documents against the evaluation sets, on Spark.

The n-gram index is the filters' (:class:`lake.ngrams.EvalNgramIndex`: word 10-grams of HumanEval and the sets
``stages.decontaminate.eval_sets`` names), so the file filter and the final-document check agree on what
"contaminated" means. The driver builds it once; its bytes travel with the task closure (a sorted uint64
array, a few hundred KB per set) and each executor process deserialises it once.
"""

from functools import lru_cache


@lru_cache(maxsize=2)
def _index(data: bytes):
    from lake.ngrams import EvalNgramIndex

    return EvalNgramIndex.from_bytes(data)


def contamination(index, texts) -> list[str | None]:
    """The matched evaluation set of each text, None when clean."""
    out = []
    for value in texts:
        hit, name = index.contaminated(value or "")
        out.append(name if hit else None)
    return out


def flag(df, text_col, index_bytes: bytes):
    """``df`` plus a ``contamination`` column: the evaluation set a document overlaps, or null."""
    import pandas as pd
    from pyspark.sql import functions as F

    @F.pandas_udf("string")
    def contaminated(texts: pd.Series) -> pd.Series:
        return pd.Series(contamination(_index(index_bytes), texts), dtype="object")

    return df.withColumn("contamination", contaminated(text_col))
