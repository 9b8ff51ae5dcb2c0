"""The schemathesis gate: every service against its own OpenAPI document.

OWASP review requirement: schemathesis against each service's OpenAPI
document, authenticated, with no 5xx, no accepted request that breaks the
schema (strict models) and no undocumented status code, on every submission.

The identity, orders and chat services run for real (uvicorn on loopback,
one SQLite database, as ``barbacana up`` runs them). Schemathesis fetches each
``/openapi.json`` over HTTP and runs its engine (the one behind ``st run``):
the examples, coverage and fuzzing phases, positive and negative data, and
every check it has (the two exceptions are listed, with their reasons, by
``BUSINESS_RULES`` and in ``load``). Since the fuzzer rarely sends exactly what
a lax model would coerce, ``test_strict_models`` probes for that on purpose.
The run is bounded (a fixed seed, derandomized, a few dozen examples per
operation) so the gate is the same on every run and takes about a minute on two
cores. Any failure or engine error fails the test, with the check, the
operation and a curl command to reproduce it.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode, engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events

from barbacana.cli._admin import bootstrap
from barbacana.ratelimit import LoginGuardSettings, PolicySettings, RateLimitSettings
from barbacana.services._runtime import DataDir
from barbacana.services.auth.app import create_app as create_auth
from barbacana.services.chat.app import create_app as create_chat
from barbacana.services.orders.app import create_app as create_orders
from barbacana.settings import ClientSettings, KeySettings, Settings, TokenSettings
from tests.conftest import FakeKekSealer, ServerThread, make_settings

pytestmark = pytest.mark.slow

ISSUER = "https://issuer.test"
#: The fuzzing phase's budget per operation (the coverage phase adds its own
#: boundary cases on top).
MAX_EXAMPLES = 20
SEED = 20_250_501

#: The rate limiter stays in the request path, so the fuzzer exercises it too,
#: but with limits no bounded run reaches: every request comes from one address
#: and one token, and a gate that mostly sees 429 tests nothing behind them.
#: (429 is documented on every operation either way; the limits themselves are
#: attacked in tests/ratelimit and tests/services.) Login-failure delays are
#: short for the same reason.
GATE_RATELIMIT = RateLimitSettings(
    policies=[
        PolicySettings(name="token", route="/token", methods=["POST"], limits=["100000/minute"])
    ],
    global_policy=PolicySettings(name="global", limits=["100000/minute"]),
    login=LoginGuardSettings(base_delay=0.01, max_delay=0.02),
)

#: The identity service's endpoints for service clients (HTTP Basic), not users.
INTERNAL_PATHS = r"^/(introspect$|internal/)"

#: Identity operations that end the credentials the rest of the run uses, so they
#: are left out of the main runs: ``/logout`` ends the admin's session (every
#: later request would be a 401 and test nothing), ``/keys/rotate`` steps the
#: signing keys towards retiring the one that signed the admin's token, and
#: disabling a user or replacing their roles revokes that user's tokens (the
#: fuzzer learns the admin's own id from ``/users/me`` and reuses it); a forced
#: client-secret rotation with no overlap ends the secret of the service client the
#: gate and the chat service use. They are fuzzed last, on their own, with a
#: throwaway admin (``test_auth_session_enders``).
SESSION_ENDERS = [
    "/logout",
    "/keys/rotate",
    "/users/{user_id}/disable",
    "/users/{user_id}/roles",
    "/clients/{client_id}/rotate-secret",
]


#: Operations whose schema-valid requests may be refused by a rule of the
#: deployment that no static schema can state; ``positive_data_acceptance`` does
#: not run there (every other check does).
BUSINESS_RULES = {
    # Role and scope names come from ``access`` settings: an unknown one is a 400
    # naming the field.
    "POST /users": "roles",
    "PUT /users/{user_id}/roles": "roles",
    "POST /apikeys": "scopes",
    # Strict models refuse a float for an integer (``"quantity": 3.0``), which JSON
    # Schema's ``integer`` admits.
    "POST /orders": "strict integers",
    # The outbound policy refuses private, loopback and unresolvable hosts (SSRF).
    "POST /orders/{order_id}/attachments": "outbound policy",
}


@dataclass(frozen=True)
class Gate:
    auth: str
    orders: str
    chat: str
    #: The bootstrap admin's access token (every scope).
    token: str
    #: A service client allowed on the identity service's internal endpoints.
    client: tuple[str, str]


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    """auth, orders and chat sharing one SQLite database, as ``barbacana up`` runs them."""
    data = tmp_path_factory.mktemp("gate")
    url = f"sqlite+aiosqlite:///{data / 'barbacana.db'}"
    sealer = FakeKekSealer()
    settings = make_settings(
        data,
        url,
        tokens=TokenSettings(issuer=ISSUER),
        key=KeySettings(publish_delay=timedelta(seconds=1)),
        ratelimit=GATE_RATELIMIT,
    )
    shown = asyncio.run(bootstrap(settings, sealer))
    with ServerThread(create_auth(settings, sealer=sealer)) as auth:

        def service(client_id: str) -> Settings:
            return make_settings(
                data,
                url,
                tokens=TokenSettings(issuer=ISSUER, identity_url=auth.url),
                client=ClientSettings(
                    id=client_id, secret_file=DataDir(data).client_secret(client_id)
                ),
                ratelimit=GATE_RATELIMIT,
            )

        with (
            ServerThread(create_orders(service("orders"))) as orders,
            ServerThread(create_chat(service("chat"))) as chat,
        ):
            response = httpx.post(
                f"{auth.url}/token",
                data={
                    "grant_type": "password",
                    "username": "admin",
                    "password": shown["admin_password"],
                },
            )
            assert response.status_code == 200, response.text
            secret = DataDir(data).client_secret("chat").read_text().strip()
            yield Gate(
                auth.url, orders.url, chat.url, response.json()["access_token"], ("chat", secret)
            )


def load(base_url: str, token: str, client: tuple[str, str]) -> Any:
    """The service's OpenAPI document, fetched over HTTP, with the gate's configuration."""
    basic = base64.b64encode(":".join(client).encode()).decode()
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",  # positive and negative data
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            # Stateful sequences need links between operations, which these documents
            # do not declare; values from responses still feed later operations.
            "phases": {"stateful": {"enabled": False}},
            # The admin's bearer token everywhere; the service client's Basic
            # credentials on the endpoints only service clients may call. (Plain
            # headers, so the ``ignored_auth`` check can drop them and expect a 401.)
            "headers": {"Authorization": f"Bearer {token}"},
            "operations": [
                {
                    "include-path-regex": INTERNAL_PATHS,
                    "headers": {"Authorization": f"Basic {basic}"},
                },
                {
                    "include-name": list(BUSINESS_RULES),
                    "checks": {"positive_data_acceptance": {"enabled": False}},
                },
            ],
            "request-timeout": 10,
        }
    )
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)


@dataclass
class Report:
    failures: list[str]
    #: Response statuses seen, by operation.
    statuses: dict[str, collections.Counter[int]]

    def unauthenticated(self) -> list[str]:
        """Operations that answered nothing but 401 (or 405 to other methods)."""
        return sorted(label for label, seen in self.statuses.items() if not set(seen) - {401, 405})


def run(schema: Any) -> Report:
    """Run the engine; collect every failed check and engine error, and the statuses seen."""
    failures: list[str] = []
    statuses: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    statuses[recorder.label][interaction.response.status_code] += 1
            for checks in recorder.checks.values():
                for check in checks:
                    info = check.failure_info
                    if info is not None:
                        failures.append(
                            f"{recorder.label} [{event.phase.value}] {check.name}: "
                            f"{info.failure.title}\n  {info.failure.message}\n  {info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            failures.append(f"engine: {event.exception!r}")
    return Report(list(dict.fromkeys(failures)), dict(statuses))


def passes(report: Report, base_url: str, token: str) -> None:
    """No failure, and the run was authenticated from start to end."""
    assert not report.failures, "schemathesis found:\n" + "\n".join(report.failures)
    # A gate whose credentials were refused tests nothing behind them.
    assert not report.unauthenticated(), f"only 401s: {report.unauthenticated()}"
    me = httpx.get(f"{base_url}/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, "the run ended the admin's session"


#: What pydantic's lax mode would coerce, by JSON Schema type: ``"1"`` and ``true``
#: for an integer, ``"1"`` for a number, ``"true"`` and ``1`` for a boolean.
LAX_VALUES: dict[str, list[Any]] = {"integer": ["1", True], "number": ["1"], "boolean": ["true", 1]}


def _json_bodies(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(operation label, resolved object schema) of every JSON request body."""
    models = document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                # A model, or an optional one (``anyOf`` with ``null``).
                options = body["schema"].get("anyOf", [body["schema"]])
                ref = next(o["$ref"] for o in options if "$ref" in o).rsplit("/", 1)[-1]
                yield f"{method.upper()} {path}", models[ref]


def _minimal_valid(schema: Any, label: str) -> Any:
    """The simplest schema-valid request of an operation, as Hypothesis shrinks it."""
    strategy = schema.find_operation_by_label(label).as_strategy(
        GenerationMode.POSITIVE, media_type="application/json"
    )
    return hypothesis.find(
        strategy,
        lambda case: isinstance(case.body, dict),
        settings=hypothesis.settings(database=None, derandomize=True, max_examples=500),
    )


def test_strict_models(gate: Gate) -> None:
    """Every JSON body is a strict model: no unknown field, no lax coercion.

    The fuzzer rarely sends exactly what lax validation coerces (``"1"`` or
    ``true`` for an integer), so each such field is probed on purpose: with the
    lax value in the simplest valid body, then that body as is. The probes go
    first, so a lax model answers them 2xx; the valid body last, so a probe that
    was refused for another reason (a 404 path, a business rule) is not counted.
    Runs before the fuzzing, whose data could turn the valid bodies into 409s.
    """
    bearer = {"Authorization": f"Bearer {gate.token}"}
    basic = httpx.BasicAuth(*gate.client)
    conclusive: list[str] = []
    accepted: list[str] = []
    for base_url in (gate.auth, gate.orders, gate.chat):
        document = httpx.get(f"{base_url}/openapi.json").json()
        schema = load(base_url, gate.token, gate.client)
        for label, model in _json_bodies(document):
            assert model.get("additionalProperties") is False, f"{label}: extra fields allowed"
            if label.split(" ", 1)[1] in SESSION_ENDERS:
                continue
            valid = _minimal_valid(schema, label)
            url = f"{base_url}{valid.formatted_path}"
            internal = re.search(INTERNAL_PATHS, valid.operation.path) is not None
            auth: dict[str, Any] = {"auth": basic} if internal else {"headers": bearer}
            probes = [{**valid.body, "unexpected": 1}]
            for name, field in model.get("properties", {}).items():
                for lax in LAX_VALUES.get(field.get("type", ""), []):
                    probes.append({**valid.body, name: lax})
            for body in probes:
                answer = httpx.request(valid.method, url, json=body, **auth)
                assert answer.status_code < 500, f"{label} {body}: {answer.status_code}"
                if answer.is_success:
                    accepted.append(f"{label} accepted {body}")
            if httpx.request(valid.method, url, json=valid.body, **auth).is_success:
                conclusive.append(label)
    assert not accepted, "\n".join(accepted)
    # The probes proved something where the valid body was accepted.
    assert {"POST /users", "POST /orders", "POST /rooms"} <= set(conclusive), conclusive


def test_auth(gate: Gate) -> None:
    report = run(load(gate.auth, gate.token, gate.client).exclude(path=SESSION_ENDERS))
    passes(report, gate.auth, gate.token)


def test_orders(gate: Gate) -> None:
    passes(run(load(gate.orders, gate.token, gate.client)), gate.auth, gate.token)


def test_chat(gate: Gate) -> None:
    passes(run(load(gate.chat, gate.token, gate.client)), gate.auth, gate.token)


def test_auth_session_enders(gate: Gate) -> None:
    """Logout, key rotation, disabling and re-roling, as a throwaway admin.

    Runs last: once the fuzzer logs this admin out or rotates the keys, what
    follows may see 401s (documented); every answer must still conform.
    """
    admin = {"Authorization": f"Bearer {gate.token}"}
    created = httpx.post(
        f"{gate.auth}/users",
        json={"username": "throwaway", "password": "throwaway-password", "roles": ["admin"]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    login = httpx.post(
        f"{gate.auth}/token",
        data={"grant_type": "password", "username": "throwaway", "password": "throwaway-password"},
    )
    assert login.status_code == 200, login.text
    # (``include`` would widen, not narrow, a schema whose config has operation entries.)
    schema = load(gate.auth, login.json()["access_token"], gate.client).exclude(
        lambda ctx: ctx.operation.path not in SESSION_ENDERS
    )
    report = run(schema)
    assert not report.failures, "schemathesis found:\n" + "\n".join(report.failures)
    assert set(report.statuses) == {
        f"{method} {path}"
        for method, path in [
            ("POST", "/logout"),
            ("POST", "/keys/rotate"),
            ("POST", "/users/{user_id}/disable"),
            ("PUT", "/users/{user_id}/roles"),
            ("POST", "/clients/{client_id}/rotate-secret"),
        ]
    }


def test_405_lists_every_method_of_the_path(gate: Gate) -> None:
    """RFC 9110 §15.5.6: a 405's ``Allow`` lists the target resource's methods.

    Schemathesis's ``allow_header_conformance`` once found ``OPTIONS /orders``
    answered with ``Allow: GET`` though ``/orders`` also takes ``POST``: Starlette
    lists the methods of the first route matching the path only.
    """
    response = httpx.request(
        "OPTIONS", f"{gate.orders}/orders", headers={"Authorization": f"Bearer {gate.token}"}
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
