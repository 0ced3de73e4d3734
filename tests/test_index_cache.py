"""The day-0 index cache: a second build reads it (no dry run, no encoding), a changed home or encoder misses it,
a corrupt or foreign file is rebuilt, and an id never leaves the cache root."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selflearn.home import Home
from selflearn.runtime import retrieval as retrieval_module
from selflearn.runtime.encoder import Encoder, shared_encoder
from selflearn.runtime.index_cache import Day0, IndexCache
from selflearn.runtime.retrieval import Retrieval, RetrievalConfig
from selflearn.sim import generate_homes

CONFIG = RetrievalConfig(per_template=1)  # a smaller day-0 index: the cache does not care how big


class CountingEncoder:
    """The shared encoder, counting the texts it is asked to encode."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.name = inner.name
        self.encoded: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded += texts
        return self.inner.encode(texts)

    def encode_one(self, text: str) -> np.ndarray:
        self.encoded.append(text)
        return self.inner.encode_one(text)


@pytest.fixture(scope="module")
def home() -> Home:
    return generate_homes(1, 5)[0]


def _retrieval(root: Path, encoder: CountingEncoder) -> Retrieval:
    return Retrieval(encoder=encoder, config=CONFIG, cache=IndexCache(root))  # type: ignore[arg-type]


def test_second_build_reads_the_cache_without_dry_run_or_encoding(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = CountingEncoder(shared_encoder())
    first = _retrieval(tmp_path, counting)
    built = first.index(home)
    assert first.cache.stats.built == 1 and len(built.entries) > 100
    assert len(counting.encoded) == len(built.entries)
    files = list((tmp_path / home.id).glob("*.npz"))
    assert len(files) == 1

    def no_dry_run(*_args: object, **_kwargs: object) -> list[object]:
        raise AssertionError("the cached index was built again")

    monkeypatch.setattr(retrieval_module, "dry_run", no_dry_run)
    encoder = CountingEncoder(shared_encoder())
    second = _retrieval(tmp_path, encoder)  # a new process's view: nothing in memory
    again = second.index(home)
    assert second.cache.stats.disk == 1 and second.cache.stats.built == 0
    assert encoder.encoded == []
    assert again.entries == built.entries
    query = shared_encoder().encode_one("switch the lights on please")
    assert again.neighbours(query, 5) == built.neighbours(query, 5)


def test_changed_home_or_encoder_misses_and_replaces_the_file(home: Home, tmp_path: Path) -> None:
    cache = IndexCache(tmp_path)
    settings = {"per_template": 1}
    key = cache.key(home, "enc", settings)
    renamed = home.model_copy(update={"devices": [home.devices[0].model_copy(update={"name": "zzz lamp"})]})
    assert cache.key(renamed, "enc", settings) != key
    assert cache.key(home, "other-encoder", settings) != key
    assert cache.key(home, "enc", {"per_template": 2}) != key
    cache.get(home, key, lambda: _day0(3))
    other = cache.key(renamed, "enc", settings)
    cache.get(renamed, other, lambda: _day0(2))
    assert cache.stats.built == 2
    assert [p.name for p in (tmp_path / home.id).glob("*.npz")] == [f"{other}.npz"]  # the stale key is gone


def _day0(n: int) -> Day0:
    vectors = np.random.default_rng(n).normal(size=(n, 4)).astype(np.float32)
    rows = [{"text": f"turn on lamp {i}", "i": i} for i in range(n)]
    return Day0(rows, vectors, [r["text"] for r in rows] + ["dropped"])


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b[:-200] + bytes(200),  # zeroed tail
        lambda b: b"not a zip file",
        lambda b: b"",
    ],
)
def test_a_corrupt_file_is_rebuilt_never_trusted(home: Home, tmp_path: Path, damage: object) -> None:
    cache = IndexCache(tmp_path)
    key = cache.key(home, "enc", {})
    path = cache.path(home, key)
    cache.get(home, key, lambda: _day0(5))
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    fresh = IndexCache(tmp_path)
    found = fresh.get(home, key, lambda: _day0(5))
    assert fresh.stats.rejected == 1 and fresh.stats.built == 1 and fresh.stats.disk == 0
    assert found.rows == _day0(5).rows and np.array_equal(found.vectors, _day0(5).vectors)
    assert IndexCache(tmp_path).read(path, key) is not None  # replaced by a whole file


def test_a_file_with_flipped_bits_or_another_key_is_not_used(home: Home, tmp_path: Path) -> None:
    cache = IndexCache(tmp_path)
    key = cache.key(home, "enc", {})
    path = cache.write(cache.path(home, key), key, _day0(4))
    assert cache.read(path, key) is not None
    assert cache.read(path, "another-key") is None
    tampered = cache.write(path, key, _day0(4))
    data = dict(np.load(tampered, allow_pickle=False))
    data["vectors"] = data["vectors"] + np.float32(0.5)  # a valid zip whose vectors no longer match the digest
    with open(tampered, "wb") as handle:
        np.savez(handle, **data)
    assert cache.read(tampered, key) is None


def test_home_ids_never_leave_the_cache_root(home: Home, tmp_path: Path) -> None:
    cache = IndexCache(tmp_path / "cache")
    hostile = home.model_copy(update={"id": "../escape"})
    key = cache.key(hostile, "enc", {})
    found = cache.get(hostile, key, lambda: _day0(2))  # built and used, never written
    assert len(found.rows) == 2 and not (tmp_path / "escape").exists() and not list(tmp_path.rglob("*.npz"))
