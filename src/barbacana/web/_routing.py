"""Which methods an app serves at a path, asked of its routes the way its router asks.

The answer feeds the ``Allow`` header of a 405 (RFC 9110 §15.5.6: it lists the
methods the *target resource* supports, so every route matching the path counts,
not only the first one the router tried) and the decision to serve ``HEAD`` as
``GET`` (RFC 9110 §9.1). Each route is asked ``route.matches(scope)``, the same
question the router asks, so path converters, mounts, hosts and root paths count
exactly as when routing.

FastAPI (from 0.165) keeps ``include_router`` routes behind one ``_IncludedRouter``
entry; :func:`concrete_routes` expands it with ``effective_route_contexts()``.
An APIRoute's context is matched itself, since it carries the prefixed path, and
other routes through the Starlette route the inclusion built for them.

This module imports neither Starlette nor FastAPI: routes are duck-typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

__all__ = ["allow_header", "concrete_routes", "served_methods"]

_NONE, _PARTIAL, _FULL = 0, 1, 2  # starlette.routing.Match values
# Conventional order for ``Allow``; other methods follow alphabetically.
_ORDER = {name: index for index, name in enumerate(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)}  # fmt: skip


def concrete_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """The routes as they are matched: FastAPI's included routers expanded into their routes."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is None:
            yield route
            continue
        for context in contexts():
            yield context.starlette_route or context


def served_methods(routes: Sequence[Any], scope: Mapping[str, Any]) -> frozenset[str] | None:
    """Every method some route in ``routes`` serves at ``scope``'s path.

    An empty set means no route matches the path. ``None`` means it cannot be
    told: a matching route takes any method and decides by itself (a class-based
    endpoint, a mounted ASGI app without routes).
    """
    methods: set[str] = set()
    for route in concrete_routes(routes):
        match, child = route.matches(scope)
        if match.value == _NONE:
            continue
        if hasattr(route, "routes"):  # Mount, Host: ask the routes inside
            nested = route.routes
            inner = served_methods(nested, {**scope, **child}) if nested else None
            if inner is None:
                return None
            methods |= inner
            continue
        declared = getattr(route, "methods", None)
        if not declared:
            return None
        methods |= declared
    return frozenset(methods)


def route_serves(routes: Sequence[Any], scope: Mapping[str, Any]) -> bool:
    """True when a route fully matches ``scope``: its path and its method."""
    for route in concrete_routes(routes):
        match, child = route.matches(scope)
        if match.value == _FULL:
            if hasattr(route, "routes"):
                return route_serves(route.routes, {**scope, **child}) or not route.routes
            return True
    return False


def allow_header(methods: Iterable[str]) -> str:
    """``methods`` as an ``Allow`` value, ``HEAD`` with ``GET``, in conventional order."""
    names = set(methods)
    if "GET" in names:
        names.add("HEAD")
    return ", ".join(sorted(names, key=lambda name: (_ORDER.get(name, len(_ORDER)), name)))
