"""The asset cache's policy, with no I/O: which content hashes are held, which are in use, what to evict.

Files are kept by sha256 under a byte budget. A job *leases* each asset it uses: a leased entry is never evicted
(so nothing an in-flight or queued job needs disappears under it). A lease of an absent entry reserves its size at
once (a download in flight counts against the budget) and evicts the least recently used unleased entries to make
room; a second lease of an entry being downloaded waits for that one download instead of starting another.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Admission", "CacheFull", "CachePolicy"]


class CacheFull(Exception):
    """The asset cannot fit: larger than the budget, or the budget is held by assets in use."""


class Admission(enum.Enum):
    HIT = "hit"
    """Present: use it."""
    WAIT = "wait"
    """Being downloaded for another lease: wait for that download."""
    DOWNLOAD = "download"
    """Absent, space reserved: download it (then :meth:`CachePolicy.ready`, or :meth:`CachePolicy.failed`)."""


@dataclass
class _Entry:
    size: int
    used: int
    leases: int = 0
    ready: bool = False


@dataclass
class CachePolicy:
    budget: int
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _clock: int = 0

    def __post_init__(self) -> None:
        if self.budget <= 0:
            raise ValueError("the asset cache budget must be > 0 bytes")

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    @property
    def used_bytes(self) -> int:
        return sum(e.size for e in self._entries.values())

    def holds(self, sha256: str) -> bool:
        entry = self._entries.get(sha256)
        return entry is not None and entry.ready

    def leases(self, sha256: str) -> int:
        entry = self._entries.get(sha256)
        return entry.leases if entry is not None else 0

    def adopt(self, sha256: str, size: int) -> None:
        """A file found in the cache folder at start-up (call in least- to most-recently-used order)."""
        self._entries[sha256] = _Entry(size=size, used=self._tick(), ready=True)

    def lease(self, sha256: str, size: int) -> tuple[Admission, list[str]]:
        """Lease ``sha256`` (``size`` bytes): what to do, and the entries to remove first (already forgotten here).
        :class:`CacheFull` when it cannot fit; nothing changes then."""
        entry = self._entries.get(sha256)
        if entry is not None:
            entry.leases += 1
            entry.used = self._tick()
            return (Admission.HIT if entry.ready else Admission.WAIT), []
        if size > self.budget:
            raise CacheFull(f"the asset is {size} bytes, more than the whole cache budget of {self.budget} bytes")
        free = self.budget - self.used_bytes
        victims: list[str] = []
        for sha, candidate in sorted(self._entries.items(), key=lambda item: item[1].used):
            if free >= size:
                break
            if candidate.leases == 0 and candidate.ready:
                victims.append(sha)
                free += candidate.size
        if free < size:
            held = sum(e.size for e in self._entries.values() if e.leases or not e.ready)
            raise CacheFull(
                f"the asset needs {size} bytes; {held} of the cache budget of {self.budget} bytes are held by "
                "assets in use"
            )
        for sha in victims:
            del self._entries[sha]
        self._entries[sha256] = _Entry(size=size, used=self._tick(), leases=1)
        return Admission.DOWNLOAD, victims

    def ready(self, sha256: str) -> None:
        """The download of ``sha256`` is verified and in place."""
        entry = self._entries.get(sha256)
        if entry is not None:
            entry.ready = True

    def failed(self, sha256: str) -> None:
        """The download of ``sha256`` failed: its reservation goes (its waiters fail too)."""
        entry = self._entries.get(sha256)
        if entry is not None and not entry.ready:
            del self._entries[sha256]

    def release(self, sha256: str) -> None:
        """One lease of ``sha256`` ends; the entry stays, most recently used."""
        entry = self._entries.get(sha256)
        if entry is not None and entry.leases > 0:
            entry.leases -= 1
            entry.used = self._tick()
