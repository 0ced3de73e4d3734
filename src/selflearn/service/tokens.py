"""Bearer tokens for the service: one per home (it reaches only that home's users) plus admin tokens for ``learn``.

Only a SHA-256 hash of each token is stored (``<data dir>/tokens.json``, mode 0600, rewritten atomically), so the
file leaks nothing usable; the token itself is printed once by ``selflearn tokens create``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from selflearn import paths
from selflearn.errors import SelflearnError

PREFIX = "slt_"


@dataclass(frozen=True)
class TokenInfo:
    id: str
    """Public handle for list/revoke: the first 12 hex digits of the hash."""
    home: str | None
    """The home the token may see; None for an admin token."""
    admin: bool
    """The token may see and change every home."""
    name: str
    """The label given at creation."""
    created: str
    """When it was created, ISO 8601 UTC."""
    sha256: str
    """Hex SHA-256 of the token (the token itself is never stored)."""


def tokens_file() -> Path:
    return paths.data_dir() / "tokens.json"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Tokens:
    """The tokens file, checked for changes on every request, so a revoke takes effect in a running service at once."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or tokens_file()
        self._cache: tuple[tuple[int, int, int], list[TokenInfo]] | None = None

    def _load(self) -> list[TokenInfo]:
        """The file's records, re-read whenever it changed (it is only ever replaced whole, so a new inode)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._cache is None or self._cache[0] != stamp:
            try:
                infos = [TokenInfo(**row) for row in json.loads(self.path.read_text(encoding="utf-8"))]
            except (ValueError, TypeError) as e:  # not JSON, not a list of records, or records of another shape
                raise SelflearnError(f"token file {self.path} is damaged ({e}); restore it or delete it") from e
            self._cache = (stamp, infos)
        return list(self._cache[1])

    def _save(self, infos: list[TokenInfo]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump([asdict(i) for i in infos], f, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def create(self, *, home: str | None, admin: bool = False, name: str = "") -> tuple[str, TokenInfo]:
        """A new token (returned once, in clear) for ``home``; admin tokens have no home."""
        if (home is None) != admin:
            raise ValueError("a token is either for one home or an admin token")
        token = PREFIX + secrets.token_urlsafe(32)
        digest = _hash(token)
        info = TokenInfo(digest[:12], home, admin, name, datetime.now(UTC).isoformat(timespec="seconds"), digest)
        self._save([*self._load(), info])
        return token, info

    def list(self) -> list[TokenInfo]:
        return self._load()

    def revoke(self, token_id: str) -> bool:
        infos = self._load()
        keep = [i for i in infos if i.id != token_id]
        if len(keep) == len(infos):
            return False
        self._save(keep)
        return True

    def check(self, token: str) -> TokenInfo | None:
        """The token's record, or None. Compares hashes in constant time."""
        digest = _hash(token)
        found = None
        for info in self._load():
            if secrets.compare_digest(info.sha256, digest):
                found = info
        return found
