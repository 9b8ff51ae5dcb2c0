"""``secure(app, settings)``: the one call that hardens a FastAPI app."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI

from ..settings import Settings
from ._forwarded import parse_trusted_proxies
from ._health import ReadinessCheck, health_router
from ._middleware import SecurityMiddleware
from ._openapi import install_docs, install_openapi
from ._problem import install_problem_handlers
from .cors import CorsPolicy, StrictCORSMiddleware

__all__ = ["secure"]


def secure(
    app: FastAPI,
    settings: Settings,
    *,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    token_url: str | None = None,
) -> FastAPI:
    """Install Barbacana's web layer on ``app`` and return it.

    Installs RFC 9457 problem+json for every error, the body-size limit (413),
    ``X-Request-ID`` (validated or generated, echoed on every response),
    security headers (HSTS over HTTPS), ``GET /health`` and ``GET /ready``,
    OpenAPI that documents problem responses and scopes, and Swagger UI served
    from local assets (or no docs at all when ``settings.web.docs`` is off).

    Args:
        app: The application, with its routes already declared or not.
        settings: The service's settings.
        readiness: Named async checks for ``/ready``; each raises a
            :class:`~barbacana.errors.BarbacanaError` when its dependency is down.
            The mapping is read at request time, so a service may add checks later.
        token_url: Where Swagger UI's Authorize posts the password grant.

    Raises:
        ConfigurationError: A setting is invalid (for example a CORS wildcard with credentials).
    """
    checks: dict[str, ReadinessCheck] = dict(readiness or {})
    app.state.barbacana_readiness = checks
    install_problem_handlers(app)
    app.include_router(health_router(checks))
    url = token_url or settings.tokens.token_url
    install_openapi(app, token_url=url, scopes=settings.access.scopes, extra_statuses={})
    install_docs(app, enabled=settings.web.docs, token_url=url)
    # Validated now, so a bad policy stops start-up with a message saying how to fix it.
    trusted = parse_trusted_proxies(settings.web.trusted_proxies)
    if settings.cors.origins:
        app.add_middleware(StrictCORSMiddleware, policy=CorsPolicy.from_settings(settings.cors))
    # Added last, so outermost: its headers and request id reach every response.
    app.add_middleware(
        SecurityMiddleware,
        max_body_bytes=settings.web.max_body_bytes,
        hsts_max_age=settings.web.hsts_max_age,
        trusted_proxies=trusted,
    )
    return app
