"""Stratified, seed-reproducible sampling by language."""

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from training.quality.sample import choose_ids, quotas, take_rows


def batches(ids, langs, size):
    return [pa.record_batch({"id": ids[i:i + size], "language": langs[i:i + size]}) for i in range(0, len(ids), size)]


def population():
    ids = [f"f{i:04d}" for i in range(600)]
    langs = ["Python"] * 400 + ["Go"] * 150 + ["Lua"] * 20 + ["JSON"] * 30
    return ids, langs


def test_sample_is_stratified_with_water_filling():
    ids, langs = population()
    chosen, counts = choose_ids(batches(ids, langs, 64), sample_size=200, seed=3)
    per_lang = {lang: sum(1 for v in chosen.values() if v == lang) for lang in counts}
    assert per_lang == {"Lua": 20, "JSON": 30, "Go": 75, "Python": 75}
    assert all(langs[ids.index(i)] == lang for i, lang in chosen.items())


def test_sample_depends_on_seed_and_ids_only_not_order_or_batching():
    ids, langs = population()
    first, _ = choose_ids(batches(ids, langs, 64), sample_size=100, seed=7)
    rev = list(reversed(range(len(ids))))
    second, _ = choose_ids(batches([ids[i] for i in rev], [langs[i] for i in rev], 13), sample_size=100, seed=7)
    other, _ = choose_ids(batches(ids, langs, 64), sample_size=100, seed=8)
    assert first == second
    assert first != other


def test_growing_the_sample_only_adds_files():
    ids, langs = population()
    small, _ = choose_ids(batches(ids, langs, 50), sample_size=80, seed=0, languages=["Python", "Go"])
    big, _ = choose_ids(batches(ids, langs, 50), sample_size=160, seed=0, languages=["Python", "Go"])
    assert set(small) < set(big)
    assert set(big.values()) == {"Python", "Go"}


def test_take_rows_returns_full_records_in_stable_order():
    ids, langs = population()
    table = pa.table({"id": ids, "language": langs, "content": [f"x{i}" for i in range(600)]})
    chosen, _ = choose_ids(table.to_batches(max_chunksize=100), sample_size=40, seed=1)
    rows = take_rows(table.to_batches(max_chunksize=77), chosen, seed=1)
    again = take_rows(reversed(table.to_batches(max_chunksize=31)), chosen, seed=1)
    assert rows.num_rows == 40 and set(rows.column("id").to_pylist()) == set(chosen)
    assert rows.equals(again)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from("ABCDEFG"), st.integers(0, 50)), st.integers(0, 200))
def test_quotas_never_exceed_counts_and_sum_to_what_is_possible(counts, total):
    q = quotas(counts, total)
    assert all(q[lang] <= counts[lang] for lang in q)
    assert sum(q.values()) == min(total, sum(counts.values()))
    # Even split: two languages that both have spare files differ by at most one.
    spare = [q[lang] for lang in q if q[lang] < counts[lang]]
    assert not spare or max(spare) - min(spare) <= 1
