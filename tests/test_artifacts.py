from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from selflearn.artifacts import ArtifactError, ArtifactStore
from selflearn.ids import InvalidId


def _writer(text: str, user: str | None = None):  # type: ignore[no-untyped-def]
    def build(d: Path) -> None:
        (d / "rewrites").mkdir()
        (d / "rewrites" / "global.txt").write_text(text)
        if user:
            for who in (user, f"{user}.emil", f"{user}0"):  # other users whose ids start the same
                (d / "personal" / who).mkdir(parents=True)
                (d / "personal" / who / "rewrites.parquet").write_text(text)

    return build


def test_default_root_follows_data_dir(_isolated_data_dir: Path) -> None:
    assert ArtifactStore().root == _isolated_data_dir / "artifacts"


def test_publish_versions_and_rollback(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    assert store.current_dir() is None and store.versions() == []
    v1 = store.publish(_writer("one"), meta={"turns": 10})
    v2 = store.publish(_writer("two"), meta={"turns": 20})
    assert v1 < v2
    cur = store.current_dir()
    assert cur is not None and (cur / "rewrites" / "global.txt").read_text() == "two"
    listed = store.versions()
    assert [v.version for v in listed] == [v1, v2] and [v.current for v in listed] == [False, True]
    assert listed[0].meta == {"turns": 10}
    assert store.rollback() == v1
    cur = store.current_dir()
    assert cur is not None and (cur / "rewrites" / "global.txt").read_text() == "one"
    with pytest.raises(ArtifactError):
        store.rollback()
    assert store.rollback(v2) == v2
    with pytest.raises(ArtifactError):
        store.rollback("nope")


def test_failed_build_leaves_current_in_service(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    v1 = store.publish(_writer("one"), meta={})

    def broken(d: Path) -> None:
        (d / "half.txt").write_text("partial")
        raise RuntimeError("learner crashed")

    with pytest.raises(RuntimeError):
        store.publish(broken, meta={})
    assert store.current() == v1
    assert [v.version for v in store.versions()] == [v1]
    assert list(store.tmp_dir.iterdir()) == []


def test_forget_user_removes_personal_files_in_every_version(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    store.publish(_writer("one", user="u1"), meta={})
    store.publish(_writer("two", user="u1"), meta={})
    stale = store.tmp_dir / "999999999-dead"  # a publisher that died mid-build (no such pid)
    live = store.tmp_dir / f"{os.getpid()}-building"
    for folder in (stale, live):
        folder.mkdir()
        _writer("building", user="u1")(folder)
    assert store.forget_user("u1") == 3
    assert not stale.exists()
    assert sorted(p.name for p in (live / "personal").iterdir()) == ["u1.emil", "u10"]
    for v in store.versions():
        personal = store.versions_dir / v.version / "personal"
        assert sorted(p.name for p in personal.iterdir()) == ["u1.emil", "u10"]
        assert (store.versions_dir / v.version / "rewrites" / "global.txt").exists()
    assert store.forget_user("u1") == 0


@pytest.mark.parametrize("hostile", ["..", "../../etc", "u1/..", "/tmp", ""])
def test_forget_user_refuses_a_hostile_id_before_deleting(tmp_path: Path, hostile: str) -> None:
    store = ArtifactStore(tmp_path / "a")
    store.publish(_writer("one", user="u1"), meta={})
    with pytest.raises(InvalidId):
        store.forget_user(hostile)
    assert (store.current_dir() / "personal" / "u1").is_dir()  # type: ignore[operator]


def test_a_pointer_naming_a_path_is_not_followed(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    store.publish(_writer("one"), meta={})
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "meta.json").write_text("{}")
    store.pointer.write_text("../../outside\n")
    assert store.current() is None and store.current_dir() is None


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from selflearn.artifacts import ArtifactStore
    def slow(d: Path) -> None:
        (d / "big.bin").write_bytes(b"x" * 1000)
        print("building", flush=True)
        time.sleep(60)
    ArtifactStore(Path(sys.argv[1])).publish(slow, meta={})
    """
)


def test_killed_publish_keeps_previous_current(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    v1 = store.publish(_writer("one"), meta={})
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "building"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert store.current() == v1
    assert [v.version for v in store.versions()] == [v1]
    assert len(list(store.tmp_dir.iterdir())) == 1  # the dead publisher's temp dir
    v2 = store.publish(_writer("two"), meta={})
    assert store.current() == v2
    assert list(store.tmp_dir.iterdir()) == []  # cleaned: its owner is gone
