"""In-process cache of route snapshots by E.164, invalidated by every write in any process.

The cache subscribes to its database's change feed (``kernel.changes``): every writer's commit
evicts the numbers (and the numbers of the agents) it changed, in this process at once and in
every other within a fraction of a second. While the feed is not live (the listener is
reconnecting) the cache is bypassed, and it is emptied when the feed comes back.

A miss that raced with an invalidation is returned but not stored (``epoch`` check), so a stale
snapshot never outlives the write that made it stale. Unknown numbers are cached too, so floods
to numbers we don't hold cost no queries; creating a number evicts its E.164, and an unknown
entry also expires on its own after ``unknown_ttl`` seconds.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

from numberplane.kernel.changes import FLUSH_ALL
from numberplane.routing.snapshot import RouteSnapshot


class RouteCache:
    def __init__(self, max_entries: int = 200_000, unknown_ttl: float = 30.0) -> None:
        self.max_entries = max_entries
        self.unknown_ttl = unknown_ttl
        # A snapshot, or for a number we do not hold, the monotonic time its entry expires. Oldest
        # first: evicting it is O(1) in an OrderedDict (a plain dict scans past deleted keys).
        self._entries: OrderedDict[str, RouteSnapshot | float] = OrderedDict()
        self._by_agent: dict[str, set[str]] = {}
        self.epoch = 0
        self.bypass = False
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, e164: str) -> tuple[bool, RouteSnapshot | None]:
        if self.bypass:
            return False, None
        try:
            value = self._entries[e164]
        except KeyError:
            self.misses += 1
            return False, None
        if value.__class__ is float:
            if time.monotonic() >= value:  # type: ignore[operator]
                del self._entries[e164]
                self.misses += 1
                return False, None
            self.hits += 1
            return True, None
        self.hits += 1
        return True, value  # type: ignore[return-value]

    def put(self, e164: str, value: RouteSnapshot | None, epoch: int) -> None:
        """Store a snapshot loaded while ``self.epoch`` was ``epoch`` (dropped if anything changed since)."""
        if self.bypass or epoch != self.epoch or self.max_entries <= 0:
            return
        if e164 not in self._entries and len(self._entries) >= self.max_entries:
            self._evict(next(iter(self._entries)))
        if value is None:
            self._entries[e164] = time.monotonic() + self.unknown_ttl
            return
        self._entries[e164] = value
        for agent_id in value.agent_ids:
            self._by_agent.setdefault(agent_id, set()).add(e164)

    def _evict(self, e164: str) -> None:
        value = self._entries.pop(e164, None)
        if isinstance(value, RouteSnapshot):
            for agent_id in value.agent_ids:
                numbers = self._by_agent.get(agent_id)
                if numbers is not None:
                    numbers.discard(e164)
                    if not numbers:
                        del self._by_agent[agent_id]

    def invalidate_numbers(self, numbers: Iterable[str]) -> None:
        self.epoch += 1
        for e164 in numbers:
            if e164 == FLUSH_ALL:
                self.clear()
                return
            self._evict(e164)

    def invalidate_agents(self, agent_ids: Iterable[str]) -> None:
        self.epoch += 1
        for agent_id in agent_ids:
            for e164 in list(self._by_agent.get(agent_id, ())):
                self._evict(e164)

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()
        self._by_agent.clear()

    def reset(self, live: bool) -> None:
        """The change feed's reset: empty, and bypass while changes may be missed."""
        self.clear()
        self.bypass = not live
