"""Access-token verification: Barbacana against the raw signature floor and other libraries.

Run from the repository root::

    uv run python bench/tokens.py                        # print the tables
    uv run python bench/tokens.py --update bench/tokens.md   # also rewrite the results section

For each algorithm (Ed25519, ES256, RS256) one access token is issued by
Barbacana and verified, signature and every claim, by:

- ``floor``: ``cryptography``'s signature check alone, on already decoded
  bytes — nothing can verify a token faster than this;
- Barbacana ``TokenVerifier.verify`` with the verified-token cache off, and on
  (a cache hit, which still re-checks expiry, the key and revocation), and,
  for reference, with the signature call stubbed out (its own Python work);
- joserfc ``jwt.decode`` plus ``JWTClaimsRegistry.validate``;
- PyJWT ``jwt.decode`` with issuer, audience and required claims. PyJWT has no
  ``Ed25519`` algorithm, so its Ed25519 row verifies a token signed under the
  deprecated name ``EdDSA`` with the same kind of key;
- python-jose ``jwt.decode`` of an HS256 token, the chapter's stack (shared
  secret, HMAC): shown in every table as a reference, not the same algorithm.

Every row is measured in interleaved rounds (each round times every row once)
and the best round is kept, which is timeit's advice for a noisy machine; the
timer is this process's CPU time, so other processes on a shared machine do
not inflate one row more than another.
The whole run takes well under a minute.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import timeit
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Running ``python bench/tokens.py`` puts bench/ first on sys.path, where a
# sibling script's name could shadow a standard module (``http``): drop it.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import jose.jwt
import jwt as pyjwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt as josejwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from barbacana.tokens import (
    KeyRing,
    RevocationState,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    generate_signing_key,
)
from barbacana.tokens._b64 import b64url_decode

ISSUER = "https://auth.barbacana.test"
AUDIENCE = "orders"
ROUNDS = 21
TARGET_SECONDS_PER_SAMPLE = 0.01
HS_SECRET = "a-shared-secret-of-at-least-32-bytes!!"


@dataclass
class Row:
    name: str
    run: Callable[[], object]
    note: str = ""
    best: float = float("inf")


def _issue(alg: str, *, ed25519_alg_name: str = "Ed25519") -> tuple[str, object, object]:
    key = generate_signing_key(
        alg,
        now=time.time(),
        state="active",
        ed25519_alg_name=ed25519_alg_name,  # type: ignore[arg-type]
    )
    ring = KeyRing([key])
    issuer = TokenIssuer(ring, issuer=ISSUER, audience=AUDIENCE, access_ttl=3600)
    token = issuer.issue_access(
        "user-6f1c2b",
        scope=["orders:read", "orders:write", "chat:use"],
        roles=["user"],
        client_id="web",
        sid="fam-9d2e",
    ).token
    return token, key, ring


def _floor(alg: str, token: str, public_key: object) -> Callable[[], object]:
    head, body, sig = token.split(".")
    signing_input = f"{head}.{body}".encode()
    signature = b64url_decode(sig)
    if alg == "ES256":
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        algorithm = ec.ECDSA(hashes.SHA256())
        return lambda: public_key.verify(der, signing_input, algorithm)  # type: ignore[attr-defined]
    if alg == "RS256":
        pad, digest = padding.PKCS1v15(), hashes.SHA256()
        return lambda: public_key.verify(signature, signing_input, pad, digest)  # type: ignore[attr-defined]
    return lambda: public_key.verify(signature, signing_input)  # type: ignore[attr-defined]


def _rows(alg: str) -> list[Row]:
    token, key, ring = _issue(alg)
    public_key = key.public_key  # type: ignore[attr-defined]
    plain = TokenVerifier(
        ring,  # type: ignore[arg-type]
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=[alg],
        cache_size=0,
        revocation=RevocationState(),
    )
    cached = TokenVerifier(
        ring,  # type: ignore[arg-type]
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=[alg],
        revocation=RevocationState(),
    )

    # The same checks with the signature call stubbed out: what Barbacana's own
    # Python work costs (size cap, base64url, header, key look-up, JSON, claims,
    # revocation). Measurement only: a copy of the key, never used to verify.
    stub_key = SigningKey(kid=key.kid, alg=key.alg, public_key=public_key)  # type: ignore[attr-defined]
    object.__setattr__(stub_key, "_verify", lambda signature, data: None)
    stubbed = TokenVerifier(
        KeyRing([stub_key]),
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=[alg],
        cache_size=0,
        revocation=RevocationState(),
    )

    jose_key = {"Ed25519": OKPKey, "ES256": ECKey, "RS256": RSAKey}[alg].import_key(public_key)
    registry = josejwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        sub={"essential": True},
        jti={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )

    def joserfc_decode() -> object:
        decoded = josejwt.decode(token, jose_key, algorithms=[alg])
        registry.validate(decoded.claims)
        return decoded.claims

    if alg == "Ed25519":
        pyjwt_token, pyjwt_key_obj, _ = _issue("Ed25519", ed25519_alg_name="EdDSA")
        pyjwt_alg, pyjwt_note = "EdDSA", "token signed as EdDSA: PyJWT has no Ed25519"
        pyjwt_key = pyjwt_key_obj.public_key  # type: ignore[attr-defined]
    else:
        pyjwt_token, pyjwt_alg, pyjwt_note, pyjwt_key = token, alg, "", public_key

    def pyjwt_decode() -> object:
        return pyjwt.decode(
            pyjwt_token,
            pyjwt_key,
            algorithms=[pyjwt_alg],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )

    now = int(time.time())
    hs_token = jose.jwt.encode(
        {
            "iss": ISSUER,
            "sub": "user-6f1c2b",
            "aud": AUDIENCE,
            "exp": now + 3600,
            "iat": now,
            "nbf": now,
            "jti": "3q2-7wAAAAAAAAAAAAAAAA",
            "client_id": "web",
            "scope": "orders:read orders:write chat:use",
            "roles": ["user"],
        },
        HS_SECRET,
        algorithm="HS256",
    )

    def python_jose_hs256() -> object:
        return jose.jwt.decode(
            hs_token, HS_SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER
        )

    rows = [
        Row("floor: cryptography verify", _floor(alg, token, public_key), "signature only"),
        Row("barbacana, cache off", lambda: plain.verify(token)),
        Row("barbacana, cache hit", lambda: cached.verify(token)),
        Row("barbacana, signature stubbed", lambda: stubbed.verify(token), "Python work only"),
        Row("joserfc decode + claims", joserfc_decode),
        Row("PyJWT decode", pyjwt_decode, pyjwt_note),
        Row("python-jose HS256 (chapter)", python_jose_hs256, "HMAC, shared secret"),
    ]
    for row in rows:  # every contender must accept the token before it is timed
        if row.run() is None and not row.name.startswith("floor"):
            raise SystemExit(f"{alg}: {row.name} did not return claims")
    return rows


def _timeit(run: Callable[[], object], number: int) -> float:
    # CPU time of this process: time slices given to other processes on a
    # shared machine are not counted against whichever row was running.
    return timeit.Timer(run, timer=time.process_time).timeit(number) / number


def _measure(rows: list[Row]) -> None:
    numbers = []
    for row in rows:
        per_call = _timeit(row.run, 20)
        numbers.append(max(20, int(TARGET_SECONDS_PER_SAMPLE / max(per_call, 1e-7))))
    for _ in range(ROUNDS):
        for row, number in zip(rows, numbers, strict=True):
            row.best = min(row.best, _timeit(row.run, number))


def _table(alg: str, rows: list[Row]) -> str:
    floor = rows[0].best
    lines = [
        f"### {alg}",
        "",
        "| verifier | µs/op | ratio to floor | note |",
        "|---|---:|---:|---|",
    ]
    for row in rows:
        lines.append(f"| {row.name} | {row.best * 1e6:.2f} | {row.best / floor:.2f} | {row.note} |")
    return "\n".join(lines)


def _issue_table() -> str:
    """Signing cost: Barbacana (cryptography directly) against joserfc ``jwt.encode``."""
    lines = [
        "### Issuing (sign one access token)",
        "",
        "| alg | barbacana µs/op | joserfc µs/op |",
        "|---|---:|---:|",
    ]
    for alg in ("Ed25519", "ES256", "RS256"):
        key = generate_signing_key(alg, now=time.time(), state="active")
        issuer = TokenIssuer(KeyRing([key]), issuer=ISSUER, audience=AUDIENCE, access_ttl=600)
        claims = dict(
            issuer.issue_access("u", scope=["orders:read"], roles=["user"], client_id="web").claims
        )
        jose_key = {"Ed25519": OKPKey, "ES256": ECKey, "RS256": RSAKey}[alg].import_key(
            key.private_key
        )
        header = {"alg": alg, "kid": key.kid, "typ": "at+jwt"}

        def ours(issuer: TokenIssuer = issuer) -> object:
            return issuer.issue_access("u", scope=["orders:read"], roles=["user"], client_id="web")

        def theirs(
            claims: dict[str, object] = claims,
            jose_key: object = jose_key,
            header: dict[str, str] = header,
            alg: str = alg,
        ) -> object:
            return josejwt.encode(header, claims, jose_key, algorithms=[alg])

        number = 60 if alg == "RS256" else 400
        best_ours = min(_timeit(ours, number) for _ in range(5))
        best_theirs = min(_timeit(theirs, number) for _ in range(5))
        lines.append(f"| {alg} | {best_ours * 1e6:.1f} | {best_theirs * 1e6:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--update", type=Path, help="rewrite the results section of this file")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", DeprecationWarning)

    started = time.perf_counter()
    tables = []
    for alg in ("Ed25519", "ES256", "RS256"):
        rows = _rows(alg)
        _measure(rows)
        tables.append(_table(alg, rows))
        print(tables[-1], end="\n\n", flush=True)
    tables.append(_issue_table())
    print(tables[-1], end="\n\n")
    elapsed = time.perf_counter() - started
    footer = (
        f"Python {sys.version.split()[0]}, best of {ROUNDS} interleaved rounds "
        f"(process CPU time), {elapsed:.0f} s in total."
    )
    print(footer)

    if args.update is not None:
        section = "\n\n".join([*tables, footer])
        text = args.update.read_text(encoding="utf-8")
        pattern = re.compile(r"(<!-- results:start -->\n).*?(\n<!-- results:end -->)", re.DOTALL)
        if not pattern.search(text):
            raise SystemExit(f"{args.update} has no results markers")
        args.update.write_text(
            pattern.sub(lambda m: m.group(1) + section + m.group(2), text), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
