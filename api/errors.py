"""422s in FastAPI's standard shape, for input that the request models cannot check alone.

Every validation error the API answers has ``detail``: a list of ``{loc, msg, type}``, as the
OpenAPI's ``HTTPValidationError`` says, whether pydantic or a handler found it.
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError


def issue(
    loc: tuple[str | int, ...],
    msg: str,
    value: Any,
    kind: str = "value_error",
    ctx: dict[str, Any] | None = None,
) -> Any:
    """One ``detail`` item; ``ctx``: details a client can act on (FastAPI's ``ctx``)."""
    found = {"type": kind, "loc": loc, "msg": msg, "input": value}
    return found if ctx is None else {**found, "ctx": ctx}


def invalid(
    loc: tuple[str | int, ...],
    msg: str,
    value: Any,
    kind: str = "value_error",
    ctx: dict[str, Any] | None = None,
) -> RequestValidationError:
    """Raise it: ``raise invalid(("query", "start"), "...", value)``."""
    return RequestValidationError([issue(loc, msg, value, kind, ctx)])
