"""Where taught preferences live (the store's table, or memory for tests and the simulator), and which apply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from selflearn.schema import Preference


class PreferenceStore(Protocol):
    """Where taught preferences live; ``selflearn.store.logstore.Store`` implements it on the log store."""

    def preferences(self, user_id: str) -> list[Preference]: ...

    def put_preference(self, p: Preference) -> None: ...

    def delete_preferences(self, user_id: str, *, kind: str | None = None, key: str | None = None) -> int: ...


class MemoryPreferences:
    """In-memory :class:`PreferenceStore` for the simulator and tests: one record per (user, kind, key, scope)."""

    def __init__(self) -> None:
        self._by_user: dict[str, dict[tuple[str, str, str], Preference]] = {}

    def preferences(self, user_id: str) -> list[Preference]:
        return sorted(self._by_user.get(user_id, {}).values(), key=lambda p: (p.kind, p.key, p.scope))

    def put_preference(self, p: Preference) -> None:
        self._by_user.setdefault(p.user_id, {})[(p.kind, p.key, p.scope)] = p

    def delete_preferences(self, user_id: str, *, kind: str | None = None, key: str | None = None) -> int:
        mine = self._by_user.get(user_id, {})
        doomed = [k for k in mine if (kind is None or k[0] == kind) and (key is None or k[1] == key)]
        for k in doomed:
            del mine[k]
        return len(doomed)


def applicable(prefs: Sequence[Preference], home_id: str) -> list[Preference]:
    """The preferences that apply in this home (scope ``*`` or the home's id), newest last."""
    return sorted((p for p in prefs if p.scope in ("*", home_id)), key=lambda p: p.ts)
