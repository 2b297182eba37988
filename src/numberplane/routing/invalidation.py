"""How writers tell the data plane a number's routing changed.

Every write that can change a routing decision calls ``numbers_changed`` inside its unit of
work. The notification is part of the transaction: on PostgreSQL a NOTIFY is only delivered
on commit, so other processes never see an invalidation for a change that rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from numberplane.db import UnitOfWork

# Local listeners (the in-process route cache registers one); called after commit.
_listeners: list[Callable[[list[str]], None]] = []


def add_listener(listener: Callable[[list[str]], None]) -> None:
    _listeners.append(listener)


def remove_listener(listener: Callable[[list[str]], None]) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def numbers_changed(uow: UnitOfWork, phone_numbers: Iterable[str]) -> None:
    """Queue an invalidation of these E.164 numbers for when ``uow`` commits."""
    changed = sorted({n for n in phone_numbers if n})
    if not changed:
        return

    def _fire() -> None:
        for listener in list(_listeners):
            listener(changed)

    uow.after_commit(_fire)
    _queue_cross_process(uow, changed)


def _queue_cross_process(uow: UnitOfWork, changed: list[str]) -> None:
    """Hook for cross-process invalidation (PostgreSQL NOTIFY); installed by routing.cache."""
    for hook in _cross_process_hooks:
        hook(uow, changed)


_cross_process_hooks: list[Callable[[UnitOfWork, list[str]], None]] = []


def add_cross_process_hook(hook: Callable[[UnitOfWork, list[str]], None]) -> None:
    _cross_process_hooks.append(hook)
