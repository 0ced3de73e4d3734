from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from selflearn.learners.labels.trace import flatten_trace
from selflearn.schema import Turn
from selflearn.sim import hostile
from selflearn.store import fastpath
from selflearn.store.ingest import _validate_line
from selflearn.store.logstore import Store


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[hostile.HostileCorpus, Path, Path, list[int]]:
    root = tmp_path_factory.mktemp("hostile")
    corpus = hostile.write(root / "in", valid=500, hostile=10_000, seed=3)
    reads = []
    with Store(root / "logs.duckdb") as store:
        for path in corpus.paths:  # an exception here is the failure this test exists for
            report = store.ingest([path], quarantine=root / "q.jsonl")
            assert report.read == report.ingested + report.duplicates + report.quarantined
            reads.append(report.read)
    return corpus, root / "logs.duckdb", root / "q.jsonl", reads


def test_corpus_is_big_and_varied(ingested: tuple[hostile.HostileCorpus, Path, Path, list[int]]) -> None:
    corpus, *_ = ingested
    assert sum(corpus.kinds.values()) >= 10_000
    assert len(corpus.kinds) >= 20
    assert corpus.lines > sum(corpus.kinds.values()) + len(corpus.valid_ids) // 2


def test_nothing_valid_lost_and_every_line_accounted_for_on_disk(
    ingested: tuple[hostile.HostileCorpus, Path, Path, list[int]],
) -> None:
    corpus, db, qfile, reads = ingested
    quarantine = [json.loads(line) for line in qfile.read_text(encoding="utf-8").splitlines()]
    with Store(db) as store:
        ids = set(store.logs().turns()["turn_id"].to_list())
    assert corpus.valid_ids <= ids
    assert sum(reads) == corpus.lines
    assert corpus.lines == len(ids) + corpus.duplicates + len(quarantine)
    assert all(q["reason"] and "Traceback" not in q["reason"] and "\n" not in q["reason"] for q in quarantine)
    reasons = Counter(q["reason"].split(" ")[0] for q in quarantine)
    assert reasons["undecodable"] == corpus.kinds["corrupt_row_group"]  # one bad group of five costs its rows only
    text = " ".join(q["reason"] for q in quarantine)
    for reason in (
        "levels deep",
        "duplicate key",
        "NaN is not",
        "out of 64-bit range",
        "valid boolean",
        "bytes (limit",
    ):
        assert reason in text


def test_every_stored_row_reads_back(ingested: tuple[hostile.HostileCorpus, Path, Path, list[int]]) -> None:
    _, db, _, _ = ingested
    with Store(db) as store:
        frame = store.logs().turns()
        assert frame.height > 0
        for row in frame.iter_rows(named=True):
            turn = store.turn(row["turn_id"])
            assert turn is not None and turn.turn_id == row["turn_id"]
            for name in Turn.json_fields:
                assert isinstance(json.loads(row[name]), dict)
            flatten_trace(row["trace"])


def test_fast_path_never_takes_a_hostile_line_pydantic_refuses(tmp_path: Path) -> None:
    corpus = hostile.write(tmp_path, valid=50, hostile=2_500, seed=4)
    lines = corpus.paths[0].read_bytes().split(b"\n")
    taken = 0
    for line in lines[1:-1]:  # not the BOM line, not the endless one
        if line.strip() and len(line) < 1_000_000 and fastpath.decode(Turn, line) is not None:
            taken += 1
            assert _validate_line(line, "turns")[1] is not None, line[:200]
    assert taken > 0
