"""HA's test harness (pytest-homeassistant-custom-component) plus a real selflearn service as a subprocess.

The service is ``selflearn serve --wyoming`` from selflearn's own venv (``SELFLEARN_BIN``, default the repo's
``.venv/bin/selflearn``): its pins clash with HA's, so it never shares this interpreter. It serves the shipped
``maple_house`` home, whose device names are the HA entities the tests create, with its own SELFLEARN_HOME.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import custom_components.selflearn  # noqa: F401  first, or the harness's own custom_components wins
import pytest

ROOT = Path(__file__).resolve().parents[1]
SELFLEARN_BIN = Path(os.environ.get("SELFLEARN_BIN", ROOT / ".venv" / "bin" / "selflearn"))
HOME_FILE = ROOT / "src" / "selflearn" / "data" / "homes" / "maple_house.yaml"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: Any) -> None:
    """Load ``custom_components/selflearn`` from this repo."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SelflearnService:
    """A running ``selflearn serve --wyoming`` and how to reach it."""

    proc: subprocess.Popen[bytes]  # the service process
    port: int  # Wyoming, for HA
    http: str  # base URL of the HTTP API (learn)
    admin_token: str  # bearer token for POST /v1/learn
    home: Path  # its SELFLEARN_HOME
    env: dict[str, str]  # the environment it runs with

    def learn(self) -> dict[str, Any]:
        """POST /v1/learn: signals -> mining -> shadow check -> publish, inside the serving process."""
        request = urllib.request.Request(
            self.http + "/v1/learn", method="POST", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        with urllib.request.urlopen(request, timeout=240) as response:
            return dict(json.load(response))

    def stopped_turns(self) -> list[dict[str, Any]]:
        """Stop the service (SIGTERM: buffered turns are written first, the exit must be clean) and read its store's
        turns with selflearn's own interpreter. Blocking: run it in HA's executor."""
        self.proc.terminate()
        _, stderr = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, stderr.decode()
        script = (
            "import json, sys; from selflearn.store.logstore import Store\n"
            "with Store(sys.argv[1]) as s: print(s.logs().turns().sort('ts').write_json())"
        )
        python = SELFLEARN_BIN.parent / "python"
        out = subprocess.run(
            [str(python), "-c", script, str(self.home / "db.duckdb")], env=self.env, capture_output=True, check=True
        )
        return list(json.loads(out.stdout))


@pytest.fixture
def selflearn_service(tmp_path: Path, socket_enabled: Any) -> Iterator[SelflearnService]:
    """A fresh selflearn service on 127.0.0.1 with its own data dir; stopped after the test."""
    assert SELFLEARN_BIN.exists(), f"no selflearn at {SELFLEARN_BIN} (set SELFLEARN_BIN)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SELFLEARN_", "VIRTUAL_ENV"))}
    env |= {"SELFLEARN_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    token = subprocess.run(
        [str(SELFLEARN_BIN), "tokens", "create", "--admin", "--json"], env=env, capture_output=True, check=True
    )
    port, http_port = _free_port(), _free_port()
    cmd = [str(SELFLEARN_BIN), "serve", "--home", str(HOME_FILE), "--port", str(http_port)]
    cmd += ["--wyoming", f"tcp://127.0.0.1:{port}", "--db", str(tmp_path / "db.duckdb")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    service = SelflearnService(
        proc, port, f"http://127.0.0.1:{http_port}", json.loads(token.stdout)["token"], tmp_path, env
    )
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, f"selflearn exited: {proc.communicate()[1].decode()}"
        try:
            with (
                urllib.request.urlopen(service.http + "/healthz", timeout=1),
                socket.create_connection(("127.0.0.1", port), 1),
            ):
                break
        except OSError:
            assert time.monotonic() < deadline, "selflearn did not come up"
            time.sleep(0.2)
    yield service
    if proc.poll() is None:
        proc.kill()
        proc.communicate()
