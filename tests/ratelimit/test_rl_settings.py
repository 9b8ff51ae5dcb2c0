"""Policies come from settings: TOML, environment, defaults; bad ones stop start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

from barbacana.errors import ConfigurationError
from barbacana.ratelimit import Limit, Policies, PolicySettings, RateLimitSettings, TokenBucket

TOML = """
[ratelimit]
algorithm = "token_bucket"
failure_mode = "closed"

[[ratelimit.policies]]
name = "orders-write"
route = "/orders"
methods = ["post"]
limits = ["5/minute", "100/hour"]
tiers = { admin = ["50/minute"] }
cost = 2

[ratelimit.global_policy]
name = "global"
limits = ["1000/hour"]
"""


def test_policies_from_a_toml_file(tmp_path: Path) -> None:
    """A TOML file sets algorithm, failure mode, per-route, per-method, per-tier limits and cost."""
    path = tmp_path / "limits.toml"
    path.write_text(TOML)
    settings = RateLimitSettings.from_toml(path)
    plan = Policies(settings).plan("/orders", "POST", "anonymous")
    assert plan.cost == 2
    (part,) = plan.parts
    assert part.algorithm is TokenBucket
    assert part.failure_mode == "closed"
    assert [(m.name, m.limit) for m in part.meters] == [
        ("orders-write-1m", Limit(5, 60)),
        ("orders-write-1h", Limit(100, 3600)),
        ("global", Limit(1000, 3600)),
    ]
    admin = Policies(settings).plan("/orders", "POST", "admin")
    assert [m.limit for m in admin.meters] == [Limit(50, 60), Limit(1000, 3600)]
    # Another method on the route has no policy of its own: only the global one.
    assert [m.name for m in Policies(settings).plan("/orders", "GET", "user").meters] == ["global"]


def test_policy_file_named_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BARBACANA_RATELIMIT_POLICY_FILE loads the file; other variables still win."""
    path = tmp_path / "limits.toml"
    path.write_text(TOML)

    class Settings(BaseSettings):  # the shape of barbacana.Settings' nesting
        model_config = SettingsConfigDict(
            env_prefix="BARBACANA_", env_nested_delimiter="_", env_nested_max_split=1
        )
        ratelimit: RateLimitSettings = RateLimitSettings()

    monkeypatch.setenv("BARBACANA_RATELIMIT_POLICY_FILE", str(path))
    monkeypatch.setenv("BARBACANA_RATELIMIT_FAILURE_MODE", "open")
    settings = Settings().ratelimit
    assert settings.algorithm == "token_bucket"
    assert settings.failure_mode == "open"
    assert [p.name for p in settings.policies] == ["orders-write"]


def test_defaults_are_strict_on_token_moderate_on_writes_generous_on_reads() -> None:
    """The shipped defaults: POST /token < writes < reads, per minute, for anonymous callers."""
    policies = Policies(RateLimitSettings())

    def per_minute(route: str, method: str) -> float:
        limits = [
            m.limit for m in policies.plan(route, method, "anonymous").meters if m.name != "global"
        ]
        return min(limit.amount * 60 / limit.window for limit in limits)

    assert (
        per_minute("/token", "POST") < per_minute("/orders", "POST") < per_minute("/orders", "GET")
    )
    user = policies.plan("/orders", "GET", "user").meters[0].limit.amount
    admin = policies.plan("/orders", "GET", "admin").meters[0].limit.amount
    assert policies.plan("/orders", "GET", "anonymous").meters[0].limit.amount < user < admin


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"name": "x", "limits": ["ten/second"]}, "not a rate limit"),
        ({"name": "x", "limits": ["1/second"], "cost": 2}, "cost"),
        ({"name": "x", "route": "orders", "limits": ["1/second"]}, "start with '/'"),
        ({"name": "x", "limits": ["1/second"], "tiers": {"gold": ["5/second"]}}, "unknown tiers"),
    ],
)
def test_bad_policies_are_configuration_errors(policy: dict[str, object], message: str) -> None:
    """A bad policy stops start-up with a message that says what to fix."""
    with pytest.raises(ConfigurationError, match=message):
        RateLimitSettings(policies=[PolicySettings.model_validate(policy)])


def test_duplicate_names_and_bad_files(tmp_path: Path) -> None:
    """Two policies with one name, or an unreadable file, are refused."""
    with pytest.raises(ConfigurationError, match="unique"):
        RateLimitSettings(
            policies=[
                PolicySettings(name="a", limits=["1/second"]),
                PolicySettings(name="a", limits=["2/second"]),
            ]
        )
    with pytest.raises(ConfigurationError, match="cannot read"):
        RateLimitSettings(policy_file=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[ratelimit\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        RateLimitSettings.from_toml(bad)


def test_core_imports_no_web_framework() -> None:
    """Only the dependency module imports Starlette; the core and the middleware do not.

    (``barbacana/__init__`` loads the web layer, so this reads each module's imports
    instead of watching ``sys.modules``.)
    """
    import ast

    import barbacana.ratelimit as package

    folder = Path(package.__file__).parent
    offenders = {}
    for path in folder.glob("*.py"):
        if path.name == "_dependency.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bad = [n for n in names if n.split(".")[0] in {"fastapi", "starlette"}]
            if bad:
                offenders[path.name] = bad
    assert offenders == {}
    assert len(list(folder.glob("*.py"))) >= 12


def test_settings_build_the_store_and_the_guard(redis_url: str) -> None:
    """No URL: in process; the service-wide Redis URL is used unless the concern names its own."""
    from barbacana.ratelimit import MemoryLoginGuard, MemoryStore, RedisLoginGuard, RedisStore

    settings = RateLimitSettings()
    assert isinstance(settings.build_store(), MemoryStore)
    assert isinstance(settings.build_login_guard(), MemoryLoginGuard)
    assert isinstance(settings.build_store(redis_url), RedisStore)
    assert isinstance(settings.build_login_guard(redis_url), RedisLoginGuard)
    own = RateLimitSettings(store_url="memory://")
    assert isinstance(own.build_store(redis_url), MemoryStore)
    with pytest.raises(ConfigurationError):
        RateLimitSettings(store_url="memcached://x").build_store()
