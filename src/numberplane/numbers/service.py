"""The numbers package's public face: what views, dialects, the CLI and other packages call.

Each step of a number's life has its own module:

- ``reading``: the API shape of a row, get, list, count;
- ``search``: a carrier's inventory;
- ``purchase``: buying as a durable order (and settling orders left pending);
- ``importing``: registering numbers the org already owns, one or 100,000 at a time;
- ``update``: changing settings, the carrier kept in step;
- ``release``: letting a number go at its carrier;
- ``lifecycle``: the one owner of each state change (activate, fail, release, carrier sync);
- ``billing``: the monthly billing clock;
- ``reconcile``: making our records and a carrier account's holdings agree;
- ``configuration`` and ``accounts``: shared by the steps above.
"""

from __future__ import annotations

from numberplane.numbers.billing import renew_due
from numberplane.numbers.configuration import wants_sms_webhook
from numberplane.numbers.import_keys import import_numbers_once
from numberplane.numbers.importing import import_numbers, import_one
from numberplane.numbers.purchase import BuyResult, buy, execute_order, resolve_order, resolve_pending_orders
from numberplane.numbers.reading import (
    account_users,
    agent_users,
    count_numbers,
    get_number,
    list_numbers,
    scan_floor,
    snapshot,
    to_read,
)
from numberplane.numbers.reconcile import reconcile_account, reconcile_all
from numberplane.numbers.release import finish_releases, release_number
from numberplane.numbers.search import search_available
from numberplane.numbers.update import InboundAgentChange, PatchFor, update_number, update_numbers

__all__ = [
    "BuyResult",
    "InboundAgentChange",
    "PatchFor",
    "account_users",
    "agent_users",
    "buy",
    "count_numbers",
    "execute_order",
    "finish_releases",
    "get_number",
    "import_numbers",
    "import_numbers_once",
    "import_one",
    "list_numbers",
    "reconcile_account",
    "reconcile_all",
    "release_number",
    "renew_due",
    "resolve_order",
    "resolve_pending_orders",
    "scan_floor",
    "search_available",
    "snapshot",
    "to_read",
    "update_number",
    "update_numbers",
    "wants_sms_webhook",
]
