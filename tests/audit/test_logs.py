"""Structured logs: JSON lines, correlation ids, stdlib routed through, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr

from barbacana import _context
from barbacana.logs import configure_logging, get_logger

JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJlLWJ5dGVz"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Configure logging into a buffer; put the previous configuration back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    configure_logging("orders", level="DEBUG", stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        structlog.reset_defaults()


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


class TestShape:
    def test_one_json_object_per_line(self, stream: io.StringIO) -> None:
        """Each event is one line with level, logger, timestamp, service and the message."""
        log = get_logger("barbacana.orders")
        log.info("order created", order_id=7)
        log.warning("slow\nquery")
        first, second = lines(stream)
        assert first["event"] == "order created"
        assert first["order_id"] == 7
        assert first["level"] == "info"
        assert first["logger"] == "barbacana.orders"
        assert first["service"] == "orders"
        assert str(first["timestamp"]).endswith("Z")
        assert second["event"] == "slow\nquery"

    def test_correlation_ids(self, stream: io.StringIO) -> None:
        """request_id and traceparent of the current request are on every line."""
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        tokens = _context.request_id.set("req-9"), _context.traceparent.set(parent)
        try:
            get_logger("x").info("inside")
            logging.getLogger("uvicorn.error").warning("from the library")
        finally:
            _context.request_id.reset(tokens[0])
            _context.traceparent.reset(tokens[1])
        get_logger("x").info("outside")
        inside, library, outside = lines(stream)
        assert (inside["request_id"], inside["traceparent"]) == ("req-9", parent)
        assert library["request_id"] == "req-9"
        assert "request_id" not in outside

    def test_stdlib_and_uvicorn_routed(self, stream: io.StringIO) -> None:
        """Standard-library loggers, uvicorn's included, come out in the same shape."""
        uvicorn_access = logging.getLogger("uvicorn.access")
        uvicorn_access.addHandler(logging.StreamHandler(io.StringIO()))
        configure_logging("orders", level="INFO", stream=stream)
        assert uvicorn_access.handlers == []
        logging.getLogger("httpx").info("pool %s", "ready")
        uvicorn_access.info('%s - "%s %s HTTP/1.1" %d', "127.0.0.1:5", "GET", "/orders", 200)
        pool, access = lines(stream)
        assert pool["event"] == "pool ready"
        assert pool["logger"] == "httpx"
        assert access["logger"] == "uvicorn.access"
        assert "GET /orders" in str(access["event"])

    def test_console_renderer(self) -> None:
        """json=False renders readable text instead."""
        buffer = io.StringIO()
        root = logging.getLogger()
        saved = list(root.handlers)
        try:
            configure_logging("orders", json=False, stream=buffer)
            get_logger("x").info("hello", password="hunter2")
        finally:
            root.handlers[:] = saved
            structlog.reset_defaults()
        assert "hello" in buffer.getvalue()
        assert "hunter2" not in buffer.getvalue()


class TestRedaction:
    def test_no_secret_reaches_a_line(self, stream: io.StringIO) -> None:
        """Secret fields, JWTs, credentials, SecretStr and exception text are redacted."""
        log = get_logger("barbacana.identity")
        log.info(
            "login",
            password="hunter2-PLAIN",
            headers={"Authorization": f"Bearer {JWT}", "Accept": "text/html"},
            client_secret=SecretStr("cs-5566778899"),
            note=f"token {JWT} seen",
        )
        logging.getLogger("uvicorn.access").info(
            '%s - "GET /cb?code=%s HTTP/1.1" 302', "10.0.0.1:1", "AUTHCODE998877"
        )
        try:
            raise ValueError(f"bad refresh_token=rt-0011223344 and {JWT}")
        except ValueError:
            log.exception("refresh failed")
        text = stream.getvalue()
        for secret in ("hunter2-PLAIN", JWT, "cs-5566778899", "AUTHCODE998877", "rt-0011223344"):
            assert secret not in text
        login, access, failure = lines(stream)
        assert login["headers"] == {"Authorization": "[REDACTED]", "Accept": "text/html"}
        assert "ValueError" in str(failure["exception"])
        assert "code=[REDACTED]" in str(access["event"])
