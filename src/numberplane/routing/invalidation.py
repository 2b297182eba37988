"""How writers tell the data plane a number's routing changed.

Every write that can change a routing decision calls ``numbers_changed`` inside its unit of
work. The notification is part of the transaction: on PostgreSQL a NOTIFY is only delivered
on commit, so other processes never see an invalidation for a change that rolled back.

Three kinds of change matter to routing:

- ``numbers_changed(uow, [e164, ...])``: a number was created, updated, released or moved;
- ``agents_changed(uow, [agent_id, ...])``: an agent got a new version (numbers that follow
  its latest version route differently) or was deleted;
- ``carrier_accounts_changed(uow, [account_id, ...])``: a carrier account's credentials or
  identifiers changed (signature verification uses them).

Cross-process hooks receive *keys*: an E.164 (``+1...``) for a number, ``agent:<id>`` for an
agent, ``account:<id>`` for a carrier account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from numberplane.db import UnitOfWork

AGENT_PREFIX = "agent:"
ACCOUNT_PREFIX = "account:"

Listener = Callable[[list[str]], None]

# Local listeners (the in-process route cache registers them); called after commit.
_listeners: list[Listener] = []
_agent_listeners: list[Listener] = []
_account_listeners: list[Listener] = []
_cross_process_hooks: list[Callable[[UnitOfWork, list[str]], None]] = []


def add_listener(listener: Listener) -> None:
    """Called with the changed E.164 numbers after each commit that changed them."""
    if listener not in _listeners:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def add_agent_listener(listener: Listener) -> None:
    """Called with the changed agent ids after each commit that changed them."""
    if listener not in _agent_listeners:
        _agent_listeners.append(listener)


def remove_agent_listener(listener: Listener) -> None:
    if listener in _agent_listeners:
        _agent_listeners.remove(listener)


def add_account_listener(listener: Listener) -> None:
    """Called with the changed carrier-account ids after each commit that changed them."""
    if listener not in _account_listeners:
        _account_listeners.append(listener)


def remove_account_listener(listener: Listener) -> None:
    if listener in _account_listeners:
        _account_listeners.remove(listener)


def add_cross_process_hook(hook: Callable[[UnitOfWork, list[str]], None]) -> None:
    if hook not in _cross_process_hooks:
        _cross_process_hooks.append(hook)


def _queue(uow: UnitOfWork, values: Iterable[str], listeners: list[Listener], prefix: str) -> None:
    changed = sorted({v for v in values if v})
    if not changed:
        return

    def _fire() -> None:
        for listener in list(listeners):
            listener(changed)

    uow.after_commit(_fire)
    keys = [prefix + v for v in changed]
    for hook in list(_cross_process_hooks):
        hook(uow, keys)


def numbers_changed(uow: UnitOfWork, phone_numbers: Iterable[str]) -> None:
    """Queue an invalidation of these E.164 numbers for when ``uow`` commits."""
    _queue(uow, phone_numbers, _listeners, "")


def agents_changed(uow: UnitOfWork, agent_ids: Iterable[str]) -> None:
    """Queue an invalidation of every cached number bound to these agents."""
    _queue(uow, agent_ids, _agent_listeners, AGENT_PREFIX)


def carrier_accounts_changed(uow: UnitOfWork, account_ids: Iterable[str]) -> None:
    """Queue an invalidation of these carrier accounts' cached verification keys."""
    _queue(uow, account_ids, _account_listeners, ACCOUNT_PREFIX)


def split_keys(keys: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """(numbers, agent ids, account ids) from cross-process keys."""
    numbers: list[str] = []
    agents: list[str] = []
    accounts: list[str] = []
    for key in keys:
        if key.startswith(AGENT_PREFIX):
            agents.append(key[len(AGENT_PREFIX) :])
        elif key.startswith(ACCOUNT_PREFIX):
            accounts.append(key[len(ACCOUNT_PREFIX) :])
        elif key:
            numbers.append(key)
    return numbers, agents, accounts
