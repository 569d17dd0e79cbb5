"""OpenTelemetry spans around every public operation, when ``opentelemetry-api`` is
installed (nothing to configure: the application's tracer provider decides where spans
go; without one, the API's no-op tracer makes them free).

A span is named ``chronos.<operation>`` (``chronos.create``, ``chronos.get_as_of``,
``chronos.admin.verify``...), of kind ``CLIENT``, with these attributes only:

- ``chronos.operation``: the operation;
- ``db.system.name`` (``mongodb``), ``chronos.db`` and ``chronos.collection`` (when the
  operation has them);
- ``chronos.ov``: the version a write produced or a read returned.

Never payloads, record ids, tenants, actors, reasons, filters or credentials. An
operation that raises ends its span with status ``ERROR`` and the exception's type (its
message is the library's own, which never quotes payload values).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

__all__ = ["traced"]

#: ``opentelemetry.trace`` when the API package is installed (the SDK is never needed).
_trace: Any
try:
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - environments without opentelemetry-api
    _trace = None

#: Tracer providers that record nothing: until the application sets one, operations
#: skip the span machinery entirely (it would cost a few microseconds per call).
_UNSET: tuple[type, ...] = (
    () if _trace is None else (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider)
)

P = ParamSpec("P")
R = TypeVar("R")


S = TypeVar("S")


def _attributes(target: object, operation: str) -> dict[str, str]:
    attributes = {"chronos.operation": operation, "db.system.name": "mongodb"}
    db, name = getattr(target, "db", None), getattr(target, "name", None)
    if isinstance(db, str) and isinstance(name, str):
        attributes["chronos.db"] = db
        attributes["chronos.collection"] = name
    return attributes


def _version_of(result: Any) -> int | None:
    ov = getattr(result, "ov", None)
    return ov if isinstance(ov, int) and not isinstance(ov, bool) else None


def traced(
    operation: str,
) -> Callable[
    [Callable[Concatenate[S, P], Awaitable[R]]], Callable[Concatenate[S, P], Awaitable[R]]
]:
    """Wrap an async method in a ``chronos.<operation>`` span (see the module docs)."""

    def wrap(
        method: Callable[Concatenate[S, P], Awaitable[R]],
    ) -> Callable[Concatenate[S, P], Awaitable[R]]:
        if _trace is None:
            return method
        tracer = _trace.get_tracer("chronos_async")
        span_name = f"chronos.{operation}"

        @functools.wraps(method)
        async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            if isinstance(_trace.get_tracer_provider(), _UNSET):
                return await method(self, *args, **kwargs)  # no provider: no span at all
            with tracer.start_as_current_span(
                span_name,
                kind=_trace.SpanKind.CLIENT,
                attributes=_attributes(self, operation),
            ) as span:
                result = await method(self, *args, **kwargs)
                ov = _version_of(result)
                if ov is not None:
                    span.set_attribute("chronos.ov", ov)
                return result

        return run

    return wrap
