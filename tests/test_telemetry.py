"""OpenTelemetry spans around public operations, recorded with the SDK's in-memory
exporter: names, kind, the allowed attributes (db, collection, operation, ov), error
status, and nothing else (no payloads, ids, tenants, actors or credentials)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chronos_async import Chronos, NotFoundError

EXPORTER = InMemorySpanExporter()
ALLOWED = {"chronos.operation", "db.system.name", "chronos.db", "chronos.collection", "chronos.ov"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider records into ``EXPORTER`` (set once: OpenTelemetry
    allows one global provider per process); cleared around each test."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


async def test_operations_make_spans_with_only_the_allowed_attributes(
    chronos: Chronos, db_name: str, spans: InMemorySpanExporter
) -> None:
    users = chronos.collection("users", db=db_name, tenant="acme")
    secret = "ada-lovelace@example.com"
    created = await users.create({"email": secret}, actor="signup", reason="private reason")
    await users.update(created.id, {"email": secret, "n": 2}, expected_ov=0)
    assert (await users.get_latest(created.id)) is not None
    await users.get_as_of(created.id, created.at)
    await users.list_by_meta({})
    with pytest.raises(NotFoundError):
        await users.diff(created.id, 0, 9)
    await chronos.admin.health()

    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    for name in (
        "chronos.create",
        "chronos.update",
        "chronos.get_latest",
        "chronos.get_as_of",
        "chronos.list_by_meta",
        "chronos.diff",
        "chronos.admin.health",
    ):
        assert name in names, names
    [create] = by_name(finished, "chronos.create")
    assert create.kind == trace.SpanKind.CLIENT
    assert dict(create.attributes or {}) == {
        "chronos.operation": "create",
        "db.system.name": "mongodb",
        "chronos.db": db_name,
        "chronos.collection": "users",
        "chronos.ov": 0,
    }
    assert dict(by_name(finished, "chronos.update")[0].attributes or {})["chronos.ov"] == 1
    assert dict(by_name(finished, "chronos.get_latest")[0].attributes or {})["chronos.ov"] == 1
    [failed] = by_name(finished, "chronos.diff")
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert any(e.name == "exception" for e in failed.events)
    for span in finished:
        attributes = dict(span.attributes or {})
        assert set(attributes) <= ALLOWED, (span.name, attributes)
        shown = repr(attributes)
        for private in (secret, created.id, "acme", "signup", "private reason"):
            assert private not in shown, (span.name, private)


async def test_no_provider_means_no_spans_and_unchanged_results(
    chronos: Chronos, db_name: str
) -> None:
    # Before any test set a provider, or with the default one, operations just run.
    things = chronos.collection("things", db=db_name)
    created = await things.create({"n": 1})
    item = await things.get_latest(created.id)
    assert item is not None and item.data == {"n": 1}
    # The wrapper keeps the method's name and documentation.
    assert things.create.__name__ == "create" and things.create.__doc__
