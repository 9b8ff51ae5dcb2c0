"""Vault KV v2 through hvac, against OpenBao's dev server (or a real Vault at VAULT_ADDR)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from barbacana.secrets import (
    SecretAccessDeniedError,
    SecretMalformedError,
    SecretNotFoundError,
    SecretResolver,
    SecretSourceUnavailableError,
    SecretsSettings,
    SecretsStartupError,
    source_from_url,
)
from barbacana.secrets.vault import (
    VaultAppRoleAuth,
    VaultKubernetesAuth,
    VaultSource,
    VaultTokenAuth,
)

from .conftest import VaultAdmin, VaultServer, eventually, free_port, start_openbao


def vault_source(server: VaultServer, auth: Any, **kwargs: Any) -> VaultSource:
    return VaultSource(server.address, auth=auth, verify=server.ca_file or True, **kwargs)


@pytest.fixture
def root_source(vault_server: VaultServer) -> Iterator[VaultSource]:
    source = vault_source(vault_server, VaultTokenAuth(vault_server.root_token))
    yield source
    source.close()


class TestKV:
    async def test_api_and_cli_forms(
        self, vault_admin: VaultAdmin, root_source: VaultSource
    ) -> None:
        """secret/data/path#f and secret/path#f read the same field; versions are reported."""
        vault_admin.put("app", {"db_password": "kv-pw-1", "user": "orders"})
        path = vault_admin.path("app")
        api = await root_source.get(f"{vault_admin.mount}/data/{path}#db_password")
        cli = await root_source.get(f"{vault_admin.mount}/{path}#db_password")
        assert api.get_secret_value() == cli.get_secret_value() == "kv-pw-1"
        assert api.version == "1"

    async def test_single_field_versions_and_errors(
        self, vault_admin: VaultAdmin, root_source: VaultSource
    ) -> None:
        """One-field secrets need no #field; ?version= pins; missing things are named."""
        vault_admin.put("single", {"token": "only-one"})
        vault_admin.put("single", {"token": "only-two"})
        vault_admin.put("multi", {"a": "1", "b": "2"})
        base = f"{vault_admin.mount}/data/"
        single = await root_source.get(base + vault_admin.path("single"))
        assert (single.get_secret_value(), single.version) == ("only-two", "2")
        pinned = await root_source.get(base + vault_admin.path("single") + "?version=1")
        assert pinned.get_secret_value() == "only-one"
        with pytest.raises(SecretMalformedError, match="fields: a, b"):
            await root_source.get(base + vault_admin.path("multi"))
        with pytest.raises(SecretNotFoundError, match="field 'c'"):
            await root_source.get(base + vault_admin.path("multi") + "#c")
        with pytest.raises(SecretNotFoundError):
            await root_source.get(base + vault_admin.path("absent") + "#x")
        with pytest.raises(SecretNotFoundError):
            await root_source.get(base + vault_admin.path("single") + "?version=9")

    async def test_change_in_vault_is_picked_up(self, vault_admin: VaultAdmin) -> None:
        """A new KV version reaches the cache without restart; previous() has the old one."""
        vault_admin.put("rotating", {"password": "before"})
        server = vault_admin.server
        source = vault_source(server, VaultTokenAuth(server.root_token))
        resolver = SecretResolver({"vault": source}, ttl=0.2, refresh_interval=0.05)
        ref = vault_admin.ref("rotating", "password")
        resolver.register(ref)
        async with resolver:
            assert resolver.current(ref).get_secret_value() == "before"
            await asyncio.to_thread(vault_admin.put, "rotating", {"password": "after"})
            assert await eventually(
                lambda: resolver.current(ref).get_secret_value() == "after", seconds=10
            )
            assert resolver.version(ref) == "2"
            previous = resolver.previous(ref)
            assert previous is not None
            assert previous.get_secret_value() == "before"

    async def test_policy_denial(self, vault_admin: VaultAdmin) -> None:
        """A token whose policy does not cover the path gets SecretAccessDeniedError."""
        vault_admin.put("allowed", {"v": "yes"})
        vault_admin.put("forbidden", {"v": "no"})
        token = vault_admin.token(vault_admin.read_policy(["allowed"]), ttl="5m")
        source = vault_source(vault_admin.server, VaultTokenAuth(token["client_token"]))
        try:
            base = f"{vault_admin.mount}/data/"
            assert (
                await source.get(base + vault_admin.path("allowed"))
            ).get_secret_value() == "yes"
            with pytest.raises(SecretAccessDeniedError, match="permission denied"):
                await source.get(base + vault_admin.path("forbidden"))
        finally:
            source.close()

    async def test_check_reports_token_state(self, root_source: VaultSource) -> None:
        """check() is ok and reports the auth method and counters, never the token."""
        health = await root_source.check()
        assert health.ok
        assert health.info["auth"] == "token"
        assert health.info["logins"] >= 1
        if root_source.address.startswith("http://"):
            assert any("plain HTTP" in w for w in health.warnings)


class TestAppRole:
    async def test_login_and_read(self, vault_admin: VaultAdmin) -> None:
        """AppRole role id + secret id log in and read, configured from settings."""
        vault_admin.put("approle", {"password": "via-approle"})
        role_id, secret_id = vault_admin.approle(vault_admin.read_policy(), token_ttl="5m")
        scheme = "vault+http" if vault_admin.server.address.startswith("http:") else "vault"
        host = vault_admin.server.address.split("://", 1)[1]
        settings = SecretsSettings(
            sources=[f"{scheme}://{host}"],
            vault_auth="approle",
            vault_role_id=role_id,
            vault_secret_id=SecretStr(secret_id),
            vault_approle_mount=vault_admin.approle_mount,
            vault_cacert=Path(vault_admin.server.ca_file) if vault_admin.server.ca_file else None,
        )
        ref = vault_admin.ref("approle", "password")
        resolver = SecretResolver.from_settings(settings)
        resolver.register(ref)
        async with resolver:
            assert resolver.current(ref).get_secret_value() == "via-approle"
            source = resolver.sources["vault"]
            assert isinstance(source, VaultSource)
            assert isinstance(source.auth, VaultAppRoleAuth)
            assert source.logins == 1

    async def test_bad_secret_id_stops_startup(self, vault_admin: VaultAdmin) -> None:
        """A wrong secret id fails start-up as access denied, naming secret and source."""
        role_id, _ = vault_admin.approle(vault_admin.read_policy())
        auth = VaultAppRoleAuth(
            role_id, "00000000-0000-0000-0000-000000000000", mount=vault_admin.approle_mount
        )
        resolver = SecretResolver({"vault": vault_source(vault_admin.server, auth)})
        ref = vault_admin.ref("anything", "x")
        resolver.register(ref)
        with pytest.raises(SecretsStartupError) as info:
            await resolver.start()
        await resolver.stop()
        failure = info.value.failures[0]
        assert failure.code == "secret_access_denied"
        assert ref in str(info.value)
        assert vault_admin.server.address in str(info.value)

    async def test_revoked_token_triggers_one_fresh_login(self, vault_admin: VaultAdmin) -> None:
        """Tokens revoked behind the service's back: the next read logs in again and succeeds."""
        vault_admin.put("revoked", {"v": "still-readable"})
        role_id, secret_id = vault_admin.approle(vault_admin.read_policy(), token_ttl="5m")
        source = vault_source(
            vault_admin.server,
            VaultAppRoleAuth(role_id, secret_id, mount=vault_admin.approle_mount),
        )
        ref = f"{vault_admin.mount}/data/{vault_admin.path('revoked')}"
        try:
            assert (await source.get(ref)).get_secret_value() == "still-readable"
            vault_admin.root.sys.revoke_prefix(f"auth/{vault_admin.approle_mount}/")
            assert (await source.get(ref)).get_secret_value() == "still-readable"
            assert source.logins == 2
        finally:
            source.close()


@pytest.mark.slow
class TestTokenLifecycle:
    async def test_renewable_token_is_renewed_before_expiry(self, vault_admin: VaultAdmin) -> None:
        """A 3 s renewable token outlives 5 s of refreshes; an unrenewed twin expires."""
        vault_admin.put("renew", {"v": "renewed"})
        policy = vault_admin.read_policy()
        kept = vault_admin.token(policy, ttl="3s", renewable=True, explicit_max_ttl="120s")
        twin = vault_admin.token(policy, ttl="3s", renewable=True, explicit_max_ttl="120s")
        source = vault_source(vault_admin.server, VaultTokenAuth(kept["client_token"]))
        resolver = SecretResolver({"vault": source}, ttl=0.5, refresh_interval=0.25)
        ref = vault_admin.ref("renew", "v")
        resolver.register(ref)
        async with resolver:
            await asyncio.sleep(5.0)
            assert source.renewals >= 2
            assert vault_admin.token_ttl(kept["accessor"]) is not None
            assert vault_admin.token_ttl(twin["accessor"]) is None  # the wait was long enough
            health = resolver.health()[ref]
            assert health.ok
            await asyncio.to_thread(vault_admin.put, "renew", {"v": "after-renewals"})
            assert await eventually(
                lambda: resolver.current(ref).get_secret_value() == "after-renewals", seconds=5
            )
            assert source.logins == 1

    async def test_unrenewable_approle_token_logs_in_again(self, vault_admin: VaultAdmin) -> None:
        """Batch tokens cannot be renewed: the source logs in again before each one expires."""
        vault_admin.put("batch", {"v": "batch-ok"})
        role_id, secret_id = vault_admin.approle(
            vault_admin.read_policy(), token_type="batch", token_ttl="3s", token_max_ttl="3s"
        )
        auth = VaultAppRoleAuth(role_id, secret_id, mount=vault_admin.approle_mount)
        source = vault_source(vault_admin.server, auth)
        resolver = SecretResolver({"vault": source}, ttl=0.5, refresh_interval=0.25)
        ref = vault_admin.ref("batch", "v")
        resolver.register(ref)
        async with resolver:
            await asyncio.sleep(4.5)
            assert source.logins >= 2
            assert source.renewals == 0
            health = resolver.health()[ref]
            assert health.ok, health
            assert health.consecutive_failures == 0

    async def test_max_ttl_cap_leads_to_fresh_login(self, vault_admin: VaultAdmin) -> None:
        """When renewal is capped by the token's max TTL, a new login replaces the token."""
        vault_admin.put("capped", {"v": "capped-ok"})
        role_id, secret_id = vault_admin.approle(
            vault_admin.read_policy(), token_ttl="2s", token_max_ttl="3s"
        )
        auth = VaultAppRoleAuth(role_id, secret_id, mount=vault_admin.approle_mount)
        source = vault_source(vault_admin.server, auth)
        resolver = SecretResolver({"vault": source}, ttl=0.5, refresh_interval=0.2)
        ref = vault_admin.ref("capped", "v")
        resolver.register(ref)
        async with resolver:
            await asyncio.sleep(4.5)
            assert source.logins >= 2
            assert resolver.health()[ref].ok

    async def test_expired_given_token_is_reported(self, vault_admin: VaultAdmin) -> None:
        """A given token that cannot be renewed: once expired, reads fail as access denied."""
        vault_admin.put("expiring", {"v": "x"})
        token = vault_admin.token(vault_admin.read_policy(), ttl="2s", renewable=False)
        source = vault_source(vault_admin.server, VaultTokenAuth(token["client_token"]))
        resolver = SecretResolver({"vault": source}, ttl=0.3, refresh_interval=0.1)
        ref = vault_admin.ref("expiring", "v")
        resolver.register(ref)
        async with resolver:
            assert await eventually(
                lambda: resolver.health()[ref].last_error == "secret_access_denied", seconds=8
            )
            assert resolver.current(ref).get_secret_value() == "x"  # last good value kept


class TestOutages:
    async def test_down_at_start(self) -> None:
        """Nothing listening: start-up fails naming secret and server address."""
        address = f"http://127.0.0.1:{free_port()}"
        resolver = SecretResolver({"vault": VaultSource(address, auth=VaultTokenAuth("t"))})
        resolver.register("vault://secret/data/app#db_password")
        with pytest.raises(SecretsStartupError) as info:
            await resolver.start()
        await resolver.stop()
        message = str(info.value)
        assert "vault://secret/data/app#db_password" in message
        assert address in message
        assert "secret_source_unavailable" in message

    @pytest.mark.slow
    async def test_down_at_refresh_keeps_last_good_value(self) -> None:
        """Stopping the server keeps the cached value; health and check() report it."""
        server = start_openbao()
        try:
            server.client().secrets.kv.v2.create_or_update_secret(
                path="down", secret={"v": "last-good"}, mount_point="secret"
            )
            source = VaultSource(server.address, auth=VaultTokenAuth("ROOT"), timeout=1)
            resolver = SecretResolver({"vault": source}, ttl=0.1, refresh_interval=0.05)
            resolver.register("vault://secret/data/down#v")
            async with resolver:
                assert server.process is not None
                server.process.stop()
                assert await eventually(
                    lambda: (
                        resolver.health()["vault://secret/data/down#v"].consecutive_failures >= 2
                    ),
                    seconds=10,
                )
                health = resolver.health()["vault://secret/data/down#v"]
                assert health.last_error == "secret_source_unavailable"
                assert resolver.current("vault://secret/data/down#v").get_secret_value() == (
                    "last-good"
                )
                assert not (await resolver.check())["vault"].ok
        finally:
            assert server.process is not None
            server.process.stop()


@pytest.mark.slow
class TestTLSAndNamespaces:
    async def test_vault_cacert_is_honoured(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Over HTTPS the server's CA from VAULT_CACERT verifies; without it TLS fails."""
        server = start_openbao(tls_dir=tmp_path)
        try:
            assert server.ca_file is not None
            server.client().secrets.kv.v2.create_or_update_secret(
                path="tls", secret={"v": "over-tls"}, mount_point="secret"
            )
            port = server.address.rsplit(":", 1)[1]
            monkeypatch.setenv("VAULT_CACERT", server.ca_file)
            monkeypatch.setenv("VAULT_TOKEN", "ROOT")
            trusted = source_from_url(f"vault://127.0.0.1:{port}")
            assert (await trusted.get("secret/data/tls#v")).get_secret_value() == "over-tls"
            trusted.close()
            monkeypatch.delenv("VAULT_CACERT")
            untrusted = source_from_url(f"vault://127.0.0.1:{port}")
            with pytest.raises(SecretSourceUnavailableError, match="SSLError"):
                await untrusted.get("secret/data/tls#v")
            untrusted.close()
        finally:
            assert server.process is not None
            server.process.stop()

    async def test_namespace(
        self, vault_server: VaultServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """VAULT_NAMESPACE selects the namespace the secret lives in."""
        if vault_server.real:
            pytest.skip("namespaces need Vault Enterprise; tested against OpenBao")
        import uuid

        namespace = f"team-{uuid.uuid4().hex[:6]}"
        root = vault_server.client()
        root.adapter.post(f"/v1/sys/namespaces/{namespace}")
        scoped = vault_server.client(namespace=namespace)
        scoped.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
        scoped.secrets.kv.v2.create_or_update_secret(
            path="app", secret={"v": "in-namespace"}, mount_point="secret"
        )
        monkeypatch.setenv("VAULT_ADDR", vault_server.address)
        monkeypatch.setenv("VAULT_TOKEN", vault_server.root_token)
        monkeypatch.setenv("VAULT_NAMESPACE", namespace)
        source = source_from_url("vault://")
        try:
            assert (await source.get("secret/data/app#v")).get_secret_value() == "in-namespace"
        finally:
            source.close()
            root.adapter.delete(f"/v1/sys/namespaces/{namespace}")


def _self_signed_ca() -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test kubernetes CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class _TokenReviewAPI(BaseHTTPRequestHandler):
    """The Kubernetes TokenReview endpoint Vault calls to verify a service-account token."""

    valid: str = ""
    verdicts: list[bool]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        authenticated = body["spec"]["token"] == self.valid
        self.verdicts.append(authenticated)
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "status": {
                "authenticated": authenticated,
                "user": {
                    "username": "system:serviceaccount:shop:orders",
                    "uid": "uid-1",
                    "groups": ["system:serviceaccounts"],
                },
            },
        }
        data = json.dumps(review).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class TestKubernetesAuth:
    async def test_service_account_login(self, vault_admin: VaultAdmin, tmp_path: Path) -> None:
        """The pod's token file is presented to Vault, which verifies it with TokenReview."""
        if vault_admin.server.real:
            pytest.skip("needs Vault to reach a TokenReview stand-in on this machine's loopback")
        import uuid

        def b64(data: dict[str, str]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        jwt = ".".join(
            [
                b64({"alg": "RS256", "kid": "k"}),
                b64(
                    {
                        "iss": "kubernetes/serviceaccount",
                        "sub": "system:serviceaccount:shop:orders",
                        "kubernetes.io/serviceaccount/namespace": "shop",
                        "kubernetes.io/serviceaccount/service-account.name": "orders",
                        "kubernetes.io/serviceaccount/service-account.uid": "uid-1",
                    }
                ),
                base64.urlsafe_b64encode(b"\x01" * 32).rstrip(b"=").decode(),
            ]
        )
        verdicts: list[bool] = []
        handler = type("Review", (_TokenReviewAPI,), {"valid": jwt, "verdicts": verdicts})
        api = HTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=api.serve_forever, daemon=True)
        thread.start()
        mount = f"k8s-bt-{uuid.uuid4().hex[:6]}"
        root = vault_admin.root
        root.sys.enable_auth_method("kubernetes", path=mount)
        try:
            root.auth.kubernetes.configure(
                kubernetes_host=f"http://127.0.0.1:{api.server_address[1]}",
                kubernetes_ca_cert=_self_signed_ca(),
                token_reviewer_jwt="reviewer",
                disable_local_ca_jwt=True,
                mount_point=mount,
            )
            root.auth.kubernetes.create_role(
                "orders",
                bound_service_account_names=["orders"],
                bound_service_account_namespaces=["shop"],
                policies=[vault_admin.read_policy()],
                ttl="5m",
                mount_point=mount,
            )
            vault_admin.put("k8s", {"v": "via-kubernetes"})
            token_file = tmp_path / "token"
            token_file.write_text(jwt + "\n")
            auth = VaultKubernetesAuth("orders", token_path=token_file, mount=mount)
            source = vault_source(vault_admin.server, auth)
            path = f"{vault_admin.mount}/data/{vault_admin.path('k8s')}#v"
            assert (await source.get(path)).get_secret_value() == "via-kubernetes"
            source.close()
            # Same claims, another signature: Vault asks TokenReview, which says no.
            forged = jwt.rsplit(".", 1)[0] + "." + base64.urlsafe_b64encode(b"\x02" * 32).decode()
            token_file.write_text(forged.rstrip("="))
            refused = vault_source(vault_admin.server, auth)
            with pytest.raises(SecretAccessDeniedError):
                await refused.get(path)
            refused.close()
            assert verdicts == [True, False]
        finally:
            root.sys.disable_auth_method(path=mount)
            api.shutdown()
            api.server_close()
