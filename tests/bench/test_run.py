"""The benchmark harness keeps every run: a later run the same day gets the next free name."""

from __future__ import annotations

from bench.run import free_stem


def test_a_later_run_the_same_day_takes_the_next_free_name(tmp_path):
    stem = tmp_path / "2026-12-02-10000"
    assert free_stem(stem) == stem

    stem.with_suffix(".json").write_text("{}")
    assert free_stem(stem) == tmp_path / "2026-12-02-10000-run2"

    (tmp_path / "2026-12-02-10000-run2.json").write_text("{}")
    assert free_stem(stem) == tmp_path / "2026-12-02-10000-run3"
    # Another scale is another series.
    assert free_stem(tmp_path / "2026-12-02-50000") == tmp_path / "2026-12-02-50000"
