"""Every finding ``barbacana check`` can report, in one table.

An id is never reused for another meaning; a finding that is retired keeps its
number unused. The hint is the general fix; a check may give a sharper one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ._messages import Finding
from .errors import InvalidFindingError

__all__ = ["CATALOGUE"]

# General
SETTINGS_INVALID = Finding(
    "BRB-E000",
    "the settings cannot be loaded, so the services would not start",
    "fix the fields named in the detail (environment variables BARBACANA_<CONCERN>_<FIELD>)",
)
NOT_INSPECTED = Finding(
    "BRB-I099",
    "part of the deployment could not be inspected",
    "run the check where the data directory and database are reachable",
)

# Tokens and signing keys (RFC 8725, RFC 7518, RFC 6819)
HMAC_ALGORITHM = Finding(
    "BRB-E001",
    "an HMAC algorithm (HS256/HS384/HS512) is configured for JSON Web Tokens",
    "Barbacana signs with Ed25519, ES256 or RS256 and never accepts HMAC: with a shared "
    "secret every verifier can also forge tokens (RFC 8725 §3.2). Remove the variable "
    "and, if needed, set BARBACANA_TOKENS_ALGORITHM=Ed25519",
)
SHORT_SECRET = Finding(
    "BRB-E002",
    "a symmetric JWT secret is shorter than 256 bits",
    "RFC 7518 §3.2 requires an HMAC key at least as long as the hash (32 bytes for HS256) "
    "and RFC 8725 §3.5 forbids human-chosen ones: remove it (Barbacana uses asymmetric keys) "
    "or replace it with `python -c 'import secrets; print(secrets.token_urlsafe(48))'`",
)
SYMMETRIC_SECRET = Finding(
    "BRB-W003",
    "a symmetric JWT secret is set in the environment",
    "Barbacana never verifies HMAC tokens, so this secret protects nothing here, while anyone "
    "who reads it can forge tokens for any verifier that still accepts it: remove it",
)
LONG_ACCESS_TTL = Finding(
    "BRB-W004",
    "access tokens live longer than one hour",
    "a stolen access token works until it expires (RFC 6819 §5.1.5.3): set "
    "BARBACANA_TOKENS_ACCESS_TTL=PT10M (ISO 8601; 10 minutes, the default)",
)
LONG_REFRESH_TTL = Finding(
    "BRB-W005",
    "refresh tokens live longer than 30 days",
    "a long-lived refresh family keeps a stolen session alive: set "
    "BARBACANA_TOKENS_REFRESH_TTL=P14D (14 days, the default)",
)
PUBLISH_DELAY = Finding(
    "BRB-E006",
    "a next signing key may sign before resource services have learned it",
    "tokens it signs fail verification until each JWKS cache refreshes (DESIGN invariant 4): "
    "set BARBACANA_KEY_PUBLISH_DELAY to at least twice BARBACANA_TOKENS_JWKS_REFRESH_INTERVAL "
    "(ISO 8601 durations: PT60S and PT30S are the defaults)",
)
OLD_SIGNING_KEY = Finding(
    "BRB-W007",
    "the active signing key is older than the rotation interval",
    "run `barbacana keys rotate` (publishes a next key), wait BARBACANA_KEY_PUBLISH_DELAY, run "
    "it again (the next key starts signing); schedule both",
)
PLAIN_KEY_URL = Finding(
    "BRB-E008",
    "signing keys or revocations are fetched over plain HTTP",
    "whoever sits on the path can hand the service a key of their own and sign any token: "
    "use an https:// identity URL (BARBACANA_TOKENS_IDENTITY_URL, ..._JWKS_URL, "
    "..._REVOCATION_URL)",
)

# Transport (RFC 6797, RFC 8996)
PLAIN_HTTP = Finding(
    "BRB-E010",
    "clients reach the service over plain HTTP",
    "tokens, passwords and cookies cross the network in clear: serve HTTPS (`barbacana up` "
    "does by default; drop --plain-http / BARBACANA_PLAIN_HTTP) and give clients https:// URLs",
)
PLAIN_HTTP_BEHIND_PROXY = Finding(
    "BRB-W011",
    "the service listens on plain HTTP behind a proxy",
    "make sure the proxy terminates TLS and that the hop to the service stays on a private "
    "network; prefer TLS on that hop too (barbacana proxy-config nginx)",
)
HSTS_OFF = Finding(
    "BRB-W012",
    "HSTS is off",
    "without Strict-Transport-Security a first plain-HTTP request can be downgraded "
    "(RFC 6797 §2.3): set BARBACANA_WEB_HSTS_MAX_AGE=63072000 (two years, the default)",
)
HSTS_SHORT = Finding(
    "BRB-W013",
    "the HSTS max-age is shorter than one year",
    "browsers forget the HTTPS-only rule soon after (RFC 6797 §11.2): set "
    "BARBACANA_WEB_HSTS_MAX_AGE to at least 31536000, 63072000 recommended",
)
CERT_EXPIRED = Finding(
    "BRB-E014",
    "a certificate has expired",
    "peers refuse it: run `barbacana pki rotate NAME` (or restart `barbacana up`, which "
    "renews service certificates itself)",
)
CERT_EXPIRING = Finding(
    "BRB-W015",
    "a certificate expires soon",
    "run `barbacana pki rotate NAME`; a running server loads the new files by itself",
)
CA_KEY_CLEAR = Finding(
    "BRB-W016",
    "the internal CA's private key is stored unencrypted",
    "anyone who copies the pki directory can issue trusted certificates: set "
    "BARBACANA_TRANSPORT_CA_PASSPHRASE from a secret store, or keep the CA key offline",
)

# Web layer
DOCS_IN_PRODUCTION = Finding(
    "BRB-W020",
    "OpenAPI docs are served in the production profile",
    "/docs and /openapi.json map every route for an attacker: set BARBACANA_WEB_DOCS=false",
)
DEBUG_IN_PRODUCTION = Finding(
    "BRB-E021",
    "debug is on in the production profile",
    "debug output can reveal internals: set BARBACANA_DEBUG=false",
)
PROXIES_ANYONE = Finding(
    "BRB-E022",
    "forwarding or identity headers are believed from any address",
    "anyone can then choose their client address (defeating per-address limits and the login "
    "guard), claim HTTPS, or claim a peer identity: list only your proxies' addresses",
)
PROXIES_BROAD = Finding(
    "BRB-W023",
    "a very broad address block is trusted to set forwarding or identity headers",
    "every host in it can spoof client addresses: list the proxies' own addresses or a /24",
)
PROXIES_INVALID = Finding(
    "BRB-E024",
    "a trusted proxy entry is refused at start-up",
    "write an address (10.0.0.5) or a network without host bits (10.0.0.0/24)",
)

# CORS (Fetch Standard; DESIGN invariant 7)
CORS_WILDCARD_CREDENTIALS = Finding(
    "BRB-E030",
    "CORS allows any origin together with credentials",
    "any web site could read your users' data, and the service refuses to start: list each "
    "origin (BARBACANA_CORS_ORIGINS='[\"https://app.example.com\"]')",
)
CORS_WILDCARD = Finding(
    "BRB-W031",
    "CORS allows any origin",
    "every web site can read the responses a browser gets: list the origins that need access",
)
CORS_INVALID = Finding(
    "BRB-E032",
    "the CORS settings are refused at start-up",
    "fix the entry named in the detail: origins are exactly scheme://host[:port]",
)
CORS_HTTP_CREDENTIALS = Finding(
    "BRB-E033",
    "CORS sends credentials to a plain-HTTP origin in production",
    "a network attacker can inject script into that page and read signed-in responses: "
    "use https:// origins only",
)
CORS_MANY_ORIGINS = Finding(
    "BRB-W034",
    "CORS sends credentials to many origins",
    "each origin is a site whose compromise exposes your users' data: keep the list short",
)

# Rate limits (OWASP API4:2023; ASVS 2.2.1)
RATELIMIT_OFF = Finding(
    "BRB-W040",
    "rate limiting is disabled",
    "set BARBACANA_RATELIMIT_ENABLED=true (the default policies limit logins, writes and reads)",
)
LOGIN_UNLIMITED = Finding(
    "BRB-W041",
    "no rate-limit policy covers the login route",
    "add a policy for POST on the token route, for example "
    "{name: token, route: /token, methods: [POST], limits: [10/minute, 50/hour]}",
)
RATELIMIT_INVALID = Finding(
    "BRB-E042",
    "the rate-limit policies are refused at start-up",
    "fix the policy named in the detail",
)
RATELIMIT_FAIL_OPEN = Finding(
    "BRB-W043",
    "rate limits stop applying when their store is down",
    "an attacker who can slow Redis gets unlimited attempts: set "
    "BARBACANA_RATELIMIT_FAILURE_MODE=fallback (count in process) or closed",
)

# Audit (OWASP A09)
AUDIT_OFF = Finding(
    "BRB-E050",
    "the audit trail is disabled",
    "security events (logins, key rotations, role changes) are not stored: set "
    "BARBACANA_AUDIT_ENABLED=true",
)
AUDIT_CONTINUE = Finding(
    "BRB-W051",
    "security actions proceed when their audit event cannot be written",
    "whoever can break the audit store acts unrecorded: set BARBACANA_AUDIT_ON_FAILURE=refuse",
)

# Secrets
PLAIN_ENV_SECRET = Finding(
    "BRB-W060",
    "a secret is given as a plain environment variable in production",
    "environment variables are readable through /proc/<pid>/environ, inherited by child "
    "processes and copied into crash reports: read it from a mounted file "
    "(BARBACANA_SECRETS_DIR), Vault or AWS Secrets Manager instead",
)
KEK_IN_DATA_DIR = Finding(
    "BRB-W061",
    "the key-encryption key is stored in the data directory in production",
    "a copy or backup of the data directory then holds both the sealed keys and the key that "
    "opens them: point BARBACANA_SECRETS_KEK_REF at Vault, AWS or a mounted secret",
)

# Files
FILE_READABLE = Finding(
    "BRB-E070",
    "a private key or secret file is accessible to other users",
    "run `chmod 600 FILE` (Barbacana writes these files 0600)",
)
DIRECTORY_OPEN = Finding(
    "BRB-W071",
    "the data directory is accessible to other users",
    "run `chmod 700 DIR`: it holds the database, keys and secrets",
)

# Outbound (SSRF guard)
OUTBOUND_TEST_ONLY_PRODUCTION = Finding(
    "BRB-E080",
    "test-only outbound allowances are set in the production profile",
    "they open private networks to user-supplied URLs and the service refuses to start: unset "
    "BARBACANA_OUTBOUND_TEST_ONLY_ALLOWED_CIDRS and ..._PORTS",
)
OUTBOUND_TEST_ONLY = Finding(
    "BRB-W081",
    "test-only outbound allowances are set",
    "user-supplied URLs may reach the listed private networks: use them in test suites only",
)
OUTBOUND_HTTP = Finding(
    "BRB-W082",
    "outbound requests to user-supplied URLs may use plain HTTP in production",
    "fetched content can be altered on the way: set BARBACANA_OUTBOUND_ALLOW_HTTP=false",
)

# A running service (--url)
LIVE_NO_HSTS = Finding(
    "BRB-W090",
    "the HTTPS response carries no Strict-Transport-Security header",
    "secure(app, settings) sends it over HTTPS; behind a proxy, set BARBACANA_WEB_TRUSTED_PROXIES "
    "so X-Forwarded-Proto is believed, or add the header at the proxy",
)
LIVE_HSTS_SHORT = Finding(
    "BRB-W091",
    "the Strict-Transport-Security max-age served is shorter than one year",
    "serve max-age=63072000 (RFC 6797 §11.2)",
)
LIVE_DOCS = Finding(
    "BRB-W092",
    "OpenAPI docs are reachable on a production service",
    "set BARBACANA_WEB_DOCS=false on the service, or block the paths at the proxy",
)
LIVE_SERVER_HEADER = Finding(
    "BRB-W093",
    "a response header names the server software",
    "run uvicorn with server_header=False (barbacana serve does) and `server_tokens off` in nginx",
)
LIVE_HEADERS_MISSING = Finding(
    "BRB-W094",
    "security headers are missing from the response",
    "install secure(app, settings), which sends them on every response, errors included",
)
LIVE_UNREACHABLE = Finding(
    "BRB-E095",
    "the service did not answer",
    "check the URL and that the service is running",
)
LIVE_UNTRUSTED = Finding(
    "BRB-E096",
    "the service's TLS certificate is not trusted",
    "pass the CA that issued it with --ca (pki/ca.pem in the data directory for the dev CA), "
    "or serve a certificate whose names include the URL's host",
)


def _catalogue() -> Mapping[str, Finding]:
    table: dict[str, Finding] = {}
    numbers: set[int] = set()
    for value in list(globals().values()):
        if isinstance(value, Finding):
            if value.id in table or value.number in numbers:
                raise InvalidFindingError(f"finding number of {value.id} is used twice")
            table[value.id] = value
            numbers.add(value.number)
    return MappingProxyType(dict(sorted(table.items())))


#: Every finding, by id.
CATALOGUE: Mapping[str, Finding] = _catalogue()
