"""Record data of a chosen encoded size, and the canonical encoding the floor uses.

Payloads look like real records (an order with line items) rather than one long string,
so encoding, hashing and any shape checks cost what they would in an application. Each
call gives different data (``n`` changes), so no write is ever a no-op.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import orjson

__all__ = ["KB", "canonical", "make_data", "size_label", "template"]

KB = 1024
#: The status values of generated records: 4 in 5 are "active" (list_by_meta filters on it).
STATUSES = ("active", "active", "active", "active", "inactive")


def canonical(data: dict[str, Any]) -> tuple[bytes, str]:
    """The library's stored form: compact UTF-8 JSON, keys sorted (orjson), and its sha256.

    The floor stores exactly these bytes, so both sides move the same payload.
    """
    body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return body, hashlib.sha256(body).hexdigest()


def _item(rng: random.Random, j: int) -> dict[str, Any]:
    return {
        "sku": f"SKU-{j:06d}",
        "qty": rng.randint(1, 9),
        "price": round(rng.uniform(1, 500), 2),
        "tags": ["stock", "eu"] if j % 2 else ["backorder"],
        "note": "handle with care" if j % 3 == 0 else "standard",
    }


def template(size: int, seed: int) -> list[dict[str, Any]]:
    """Line items whose record encodes to about ``size`` bytes (shared, never mutated)."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    while len(orjson.dumps(_record(items, 0, "active"))) < size:
        items.append(_item(rng, len(items)))
    if len(items) > 1 and len(orjson.dumps(_record(items, 0, "active"))) > size * 1.05:
        items.pop()
    return items


def _record(items: list[dict[str, Any]], n: int, status: str) -> dict[str, Any]:
    return {
        "customer": {"email": f"user{n}@example.com", "name": f"Customer {n}", "tier": "gold"},
        "status": status,
        "n": n,
        "currency": "EUR",
        # Real records hold nulls; the library treats payloads with a null specially.
        "coupon": None,
        "items": items,
    }


def make_data(items: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Record number ``n`` over the shared ``items`` (status from :data:`STATUSES`)."""
    return _record(items, n, STATUSES[n % len(STATUSES)])


def size_label(size: int) -> str:
    """``1 KB``, ``100 KB``, ``1 MB``."""
    if size >= KB * KB:
        return f"{size // (KB * KB)} MB"
    return f"{size // KB} KB"
