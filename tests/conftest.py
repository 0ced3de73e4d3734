"""Every test runs with its own selflearn data dir, so nothing touches a real user's logs or artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("selflearn_home")
    monkeypatch.setenv("SELFLEARN_HOME", str(home))
    monkeypatch.delenv("SELFLEARN_DB", raising=False)
    monkeypatch.delenv("SELFLEARN_ARTIFACTS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return home
