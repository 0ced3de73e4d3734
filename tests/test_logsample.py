from __future__ import annotations

from pathlib import Path

from selflearn.schema import Feedback, Gold, Turn, read_jsonl, read_parquet
from selflearn.sim import logsample


def test_generate_is_deterministic_and_consistent() -> None:
    a = logsample.generate(300, seed=7)
    b = logsample.generate(300, seed=7)
    assert a.turns == b.turns and a.gold == b.gold and a.feedback == b.feedback
    assert logsample.generate(300, seed=8).turns != a.turns
    assert len(a.turns) == len(a.gold) == 300
    assert [t.turn_id for t in a.turns] == [g.turn_id for g in a.gold]
    assert len({t.turn_id for t in a.turns}) == 300
    ids = {t.turn_id for t in a.turns}
    assert all(f.turn_id in ids for f in a.feedback)
    assert [t.ts for t in a.turns] == sorted(t.ts for t in a.turns)
    statuses = {t.result_status for t in a.turns}
    assert "success" in statuses and len(statuses) > 1
    assert any(g.is_rephrase_of for g in a.gold) and any(t.barge_in for t in a.turns)


def test_write_log_round_trips(tmp_path: Path) -> None:
    log = logsample.generate(50, seed=1)
    for fmt in ("jsonl", "parquet"):
        paths = logsample.write_log(log, tmp_path / fmt, fmt=fmt)  # type: ignore[arg-type]
        read = read_jsonl if fmt == "jsonl" else read_parquet
        assert list(read(paths["turns"], Turn)) == log.turns
        assert list(read(paths["gold"], Gold)) == log.gold
        assert list(read(paths["feedback"], Feedback)) == log.feedback


def test_corrupt_jsonl_counts_every_kind() -> None:
    lines = [t.model_dump_json().encode() for t in logsample.generate(200, seed=2).turns]
    bad, counts = logsample.corrupt_jsonl(lines, rate=0.1, seed=2)
    assert set(counts) == set(logsample.JSONL_CORRUPTIONS)
    assert sum(counts.values()) == 20
    assert len(bad) == 200 + counts["duplicate"]
    changed = sum(1 for x, y in zip(lines, bad, strict=False) if x != y)
    assert changed == 20 - counts["duplicate"]
