"""The files source: one file per secret, confined to its directory."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from barbacana.secrets import (
    FilesSource,
    SecretAccessDeniedError,
    SecretMalformedError,
    SecretNotFoundError,
    SecretsConfigurationError,
    SecretSourceUnavailableError,
    provision_file_secret,
)


def write(path: Path, data: str | bytes, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    path.chmod(mode)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "run-secrets"
    directory.mkdir(mode=0o700)
    return directory


class TestRead:
    async def test_reads_and_strips_one_newline(self, root: Path) -> None:
        """Exactly one trailing newline (LF or CRLF) is removed; the rest is the secret."""
        write(root / "plain", "s3cr3t")
        write(root / "lf", "s3cr3t\n")
        write(root / "crlf", "s3cr3t\r\n")
        write(root / "two", "s3cr3t\n\n")
        source = FilesSource(root)
        assert (await source.get("plain")).get_secret_value() == "s3cr3t"
        assert (await source.get("lf")).get_secret_value() == "s3cr3t"
        assert (await source.get("crlf")).get_secret_value() == "s3cr3t"
        assert (await source.get("two")).get_secret_value() == "s3cr3t\n"

    async def test_nested_name_and_json_field(self, root: Path) -> None:
        """Sub-directories are allowed, and #field selects a member of a JSON file."""
        write(root / "db" / "credentials.json", '{"user": "orders", "password": "pw-1"}\n')
        source = FilesSource(root)
        value = await source.get("db/credentials.json#password")
        assert value.get_secret_value() == "pw-1"
        with pytest.raises(SecretNotFoundError, match="fields: password, user"):
            await source.get("db/credentials.json#missing")

    async def test_kubernetes_volume_layout(self, root: Path) -> None:
        """The ..data symlink farm of a Kubernetes secret volume resolves (links stay inside)."""
        write(root / "..2025_01_01" / "password", "k8s-pw")
        (root / "..data").symlink_to("..2025_01_01")
        (root / "password").symlink_to("..data/password")
        assert (await FilesSource(root).get("password")).get_secret_value() == "k8s-pw"

    async def test_missing_secret_names_file_and_source(self, root: Path) -> None:
        """A missing file is SecretNotFoundError naming the reference and the directory."""
        with pytest.raises(SecretNotFoundError) as info:
            await FilesSource(root).get("absent")
        assert info.value.secret == "file://absent"
        assert str(root) in (info.value.source or "")

    async def test_missing_directory_is_unavailable(self, tmp_path: Path) -> None:
        """An unmounted directory means the source is down, not that the secret is absent."""
        with pytest.raises(SecretSourceUnavailableError):
            await FilesSource(tmp_path / "not-mounted").get("x")


class TestConfinement:
    @pytest.mark.parametrize(
        "name", ["../outside", "a/../../outside", "/etc/passwd", ".hidden", "a//b", "..data/x", ""]
    )
    async def test_traversal_names_refused(self, root: Path, name: str) -> None:
        """Names that could leave the directory are configuration errors, before any I/O."""
        source = FilesSource(root)
        with pytest.raises(SecretsConfigurationError):
            source.validate_name(name)
        with pytest.raises(SecretsConfigurationError):
            await source.get(name)

    async def test_symlink_escaping_is_refused(self, root: Path, tmp_path: Path) -> None:
        """A link to a file outside the directory is refused, and its content never returned."""
        outside = write(tmp_path / "host-file", "HOST-SECRET-NOT-FOR-YOU")
        (root / "innocent").symlink_to(outside)
        with pytest.raises(SecretAccessDeniedError, match="outside") as info:
            await FilesSource(root).get("innocent")
        assert "HOST-SECRET" not in str(info.value)

    async def test_directory_symlink_escaping_is_refused(self, root: Path, tmp_path: Path) -> None:
        """A linked sub-directory pointing outside is refused too."""
        write(tmp_path / "elsewhere" / "key", "ELSEWHERE")
        (root / "sub").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(SecretAccessDeniedError):
            await FilesSource(root).get("sub/key")

    async def test_fifo_does_not_hang(self, root: Path) -> None:
        """A FIFO planted as a secret is refused at once instead of blocking a thread."""
        os.mkfifo(root / "pipe")
        with pytest.raises(SecretMalformedError, match="not a regular file"):
            await FilesSource(root).get("pipe")

    async def test_oversized_empty_and_binary_files(self, root: Path) -> None:
        """Too large, empty, and non-UTF-8 files are malformed secrets."""
        write(root / "big", "x" * 100)
        write(root / "empty", "\n")
        write(root / "binary", b"\xff\xfe\x00")
        source = FilesSource(root, max_bytes=64)
        with pytest.raises(SecretMalformedError, match="larger than 64"):
            await source.get("big")
        with pytest.raises(SecretMalformedError, match="empty"):
            await source.get("empty")
        with pytest.raises(SecretMalformedError, match="UTF-8"):
            await source.get("binary")


class TestHealth:
    async def test_loose_modes_are_warned(self, root: Path) -> None:
        """Files readable by group or others are reported; 0600 and 0400 are not."""
        write(root / "tight", "a", 0o600)
        write(root / "readonly", "b", 0o400)
        write(root / "loose", "c", 0o644)
        health = await FilesSource(root).check()
        assert health.ok
        assert len(health.warnings) == 1
        assert "loose" in health.warnings[0]
        assert "0644" in health.warnings[0]
        assert health.info["files"] == 3

    async def test_escaping_link_is_warned(self, root: Path, tmp_path: Path) -> None:
        """check() points out links that reads will refuse."""
        (root / "link").symlink_to(write(tmp_path / "out", "x"))
        health = await FilesSource(root).check()
        assert any("links outside" in w for w in health.warnings)

    async def test_missing_directory_is_not_ok(self, tmp_path: Path) -> None:
        """check() reports a missing directory instead of raising."""
        health = await FilesSource(tmp_path / "nope").check()
        assert not health.ok
        assert "not available" in health.detail


class TestProvision:
    def test_creates_private_file_once(self, tmp_path: Path) -> None:
        """First call creates 0600 in a 0700 directory; later calls keep the first value."""
        directory = tmp_path / "data" / "secrets"
        assert provision_file_secret(directory, "kek", lambda: "first-value")
        assert not provision_file_secret(directory, "kek", lambda: "second-value")
        assert (directory / "kek").read_text() == "first-value\n"
        assert (directory / "kek").stat().st_mode & 0o777 == 0o600
        assert directory.stat().st_mode & 0o777 == 0o700
        assert sorted(p.name for p in directory.iterdir()) == ["kek"]

    async def test_readable_through_the_source(self, tmp_path: Path) -> None:
        """What provision writes, the files source reads back (newline stripped)."""
        provision_file_secret(tmp_path, "kek", lambda: "v4lue")
        assert (await FilesSource(tmp_path).get("kek")).get_secret_value() == "v4lue"

    def test_concurrent_first_runs_agree(self, tmp_path: Path) -> None:
        """Eight racing first runs: exactly one creates the file, nobody overwrites it."""
        results: list[bool] = []
        barrier = threading.Barrier(8)

        def run(i: int) -> None:
            barrier.wait()
            results.append(provision_file_secret(tmp_path, "kek", lambda: f"value-{i}"))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sorted(results) == [False] * 7 + [True]
        assert (tmp_path / "kek").read_text().startswith("value-")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["kek"]

    def test_refuses_bad_names_and_values(self, tmp_path: Path) -> None:
        """Path-like names and values with newlines are refused."""
        with pytest.raises(SecretsConfigurationError):
            provision_file_secret(tmp_path, "../kek", lambda: "x")
        with pytest.raises(SecretsConfigurationError):
            provision_file_secret(tmp_path, "a/b", lambda: "x")
        with pytest.raises(SecretMalformedError):
            provision_file_secret(tmp_path, "kek", lambda: "two\nlines")
        assert not (tmp_path / "kek").exists()
