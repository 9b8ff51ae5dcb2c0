"""Envelope encryption: round trips, tampering, wrong keys, rewrap, and the documented layout."""

from __future__ import annotations

import hashlib
import pickle
import secrets

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretBytes, SecretStr

from barbacana.crypto import (
    ENVELOPE_MAGIC,
    EnvelopeAuthenticationError,
    EnvelopeError,
    EnvelopeFormatError,
    InvalidKeyEncryptionKeyError,
    KeyEncryptionKey,
    Sealer,
    UnknownKeyEncryptionKeyError,
    derive_kek_id,
    kek_id_of,
    open_sealed,
    rewrap,
    seal,
)
from barbacana.errors import ConfigurationError, SecretsError

AAD = b"barbacana/signing-key/kid-1"
PLAINTEXT = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def kek() -> KeyEncryptionKey:
    return KeyEncryptionKey.generate()


class TestRoundTrip:
    @settings(max_examples=50, deadline=None)
    @given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=64))
    def test_open_returns_what_was_sealed(self, plaintext: bytes, aad: bytes) -> None:
        """Any plaintext and associated data round-trip."""
        kek = KeyEncryptionKey(bytes(range(32)))
        assert open_sealed(seal(plaintext, kek, aad=aad), [kek], aad=aad) == plaintext

    def test_raw_bytes_and_mapping_forms(self) -> None:
        """A 32-byte KEK and a {kek_id: bytes} ring work as well as the holder class."""
        raw = secrets.token_bytes(32)
        blob = seal(PLAINTEXT, raw, aad=AAD)
        assert open_sealed(blob, {derive_kek_id(raw): raw}, aad=AAD) == PLAINTEXT
        assert open_sealed(blob, KeyEncryptionKey(raw), aad=AAD) == PLAINTEXT

    def test_each_seal_is_fresh(self, kek: KeyEncryptionKey) -> None:
        """Sealing twice gives different bytes (fresh data key and nonces)."""
        assert seal(PLAINTEXT, kek, aad=AAD) != seal(PLAINTEXT, kek, aad=AAD)

    def test_layout_matches_the_documentation(self, kek: KeyEncryptionKey) -> None:
        """An independent reader following the documented layout opens the blob."""
        blob = seal(PLAINTEXT, kek, aad=AAD)
        assert blob[:4] == ENVELOPE_MAGIC == b"BRBE"
        assert blob[4] == 1
        n = blob[5]
        assert blob[6 : 6 + n] == kek.kek_id == kek_id_of(blob)
        header = blob[: 6 + n]
        wrap_nonce = blob[6 + n : 18 + n]
        wrapped = blob[18 + n : 66 + n]
        payload_nonce, ciphertext = blob[66 + n : 78 + n], blob[78 + n :]
        data_key = AESGCM(kek.material()).decrypt(
            wrap_nonce, wrapped, b"barbacana/envelope/v1/wrap\x00" + header + AAD
        )
        assert len(data_key) == 32
        plaintext = AESGCM(data_key).decrypt(
            payload_nonce, ciphertext, b"barbacana/envelope/v1/payload\x00" + AAD
        )
        assert plaintext == PLAINTEXT
        assert len(blob) == 78 + n + len(PLAINTEXT) + 16

    def test_kek_id_is_labelled_sha256_prefix(self) -> None:
        """The default id is the first 8 bytes of SHA-256 over the label and the key."""
        raw = bytes(32)
        expected = hashlib.sha256(b"barbacana/kek-id/v1\x00" + raw).digest()[:8]
        assert KeyEncryptionKey(raw).kek_id == expected
        assert expected != hashlib.sha256(raw).digest()[:8]


class TestTampering:
    def test_every_single_byte_change_is_detected(self, kek: KeyEncryptionKey) -> None:
        """Flipping any bit of any byte makes opening fail with an envelope error."""
        blob = seal(b"k" * 40, kek, aad=AAD)
        n = blob[5]
        for position in range(len(blob)):
            changed = bytearray(blob)
            changed[position] ^= 0x01
            with pytest.raises(EnvelopeError) as info:
                open_sealed(bytes(changed), [kek], aad=AAD)
            if position < 5:
                assert isinstance(info.value, EnvelopeFormatError), position
            elif position == 5:  # the id length: another id, or a truncated blob
                assert isinstance(info.value, UnknownKeyEncryptionKeyError | EnvelopeFormatError)
            elif position < 6 + n:
                assert isinstance(info.value, UnknownKeyEncryptionKeyError), position
            else:
                assert isinstance(info.value, EnvelopeAuthenticationError), position

    def test_other_associated_data_fails(self, kek: KeyEncryptionKey) -> None:
        """A blob moved to another record (another AAD) does not open."""
        blob = seal(PLAINTEXT, kek, aad=AAD)
        with pytest.raises(EnvelopeAuthenticationError, match="associated data"):
            open_sealed(blob, [kek], aad=b"barbacana/signing-key/kid-2")

    def test_kek_id_swapped_to_another_known_key_fails(self, kek: KeyEncryptionKey) -> None:
        """Relabelling a blob with the id of another key the opener holds is caught."""
        other = KeyEncryptionKey.generate()
        blob = seal(PLAINTEXT, kek, aad=AAD)
        forged = blob[:6] + other.kek_id + blob[6 + len(kek.kek_id) :]
        with pytest.raises(EnvelopeAuthenticationError):
            open_sealed(forged, [kek, other], aad=AAD)

    def test_wrong_key_with_the_same_explicit_id_fails(self) -> None:
        """Two keys sharing an explicit id: the tag, not the id, decides."""
        right = KeyEncryptionKey.generate(kek_id="prod-2025")
        wrong = KeyEncryptionKey.generate(kek_id="prod-2025")
        blob = seal(PLAINTEXT, right, aad=AAD)
        with pytest.raises(EnvelopeAuthenticationError):
            open_sealed(blob, [wrong], aad=AAD)

    def test_unknown_kek_names_the_needed_id(self, kek: KeyEncryptionKey) -> None:
        """A wrong KEK gives a clear error naming the id the blob needs."""
        blob = seal(PLAINTEXT, kek, aad=AAD)
        other = KeyEncryptionKey.generate()
        with pytest.raises(UnknownKeyEncryptionKeyError) as info:
            open_sealed(blob, [other], aad=AAD)
        assert kek.kek_id.hex() in info.value.detail
        assert other.kek_id.hex() in info.value.detail
        assert info.value.code == "envelope_unknown_kek"
        assert isinstance(info.value, SecretsError)

    @pytest.mark.parametrize(
        "blob",
        [b"", b"BRBE", b"XXXX\x01\x08" + bytes(100), b"BRBE\x02\x08" + bytes(100), b"BRBE\x01\x00"],
    )
    def test_malformed_input(self, blob: bytes, kek: KeyEncryptionKey) -> None:
        """Short, foreign, zero-id and future-version inputs are format errors."""
        with pytest.raises(EnvelopeFormatError):
            open_sealed(blob, [kek], aad=AAD)

    def test_truncated_blob(self, kek: KeyEncryptionKey) -> None:
        """Cutting the blob anywhere fails cleanly."""
        blob = seal(b"x", kek, aad=AAD)
        for length in range(len(blob)):
            with pytest.raises(EnvelopeError):
                open_sealed(blob[:length], [kek], aad=AAD)


class TestRewrap:
    def test_rewrap_moves_to_the_new_key_and_keeps_the_payload(self) -> None:
        """Only the data-key part changes; the old key no longer opens the result."""
        old, new = KeyEncryptionKey.generate(), KeyEncryptionKey.generate()
        blob = seal(PLAINTEXT, old, aad=AAD)
        moved = rewrap(blob, old, new, aad=AAD)
        assert open_sealed(moved, [new], aad=AAD) == PLAINTEXT
        assert kek_id_of(moved) == new.kek_id
        payload = len(PLAINTEXT) + 16 + 12
        assert moved[-payload:] == blob[-payload:]
        with pytest.raises(UnknownKeyEncryptionKeyError):
            open_sealed(moved, [old], aad=AAD)

    def test_rewrap_checks_the_old_key_and_aad(self) -> None:
        """Rewrap refuses another key, and a changed AAD."""
        old, new = KeyEncryptionKey.generate(), KeyEncryptionKey.generate()
        blob = seal(PLAINTEXT, old, aad=AAD)
        with pytest.raises(UnknownKeyEncryptionKeyError):
            rewrap(blob, new, old, aad=AAD)
        with pytest.raises(EnvelopeAuthenticationError):
            rewrap(blob, old, new, aad=b"other")

    def test_sealer_opens_previous_and_rewraps(self) -> None:
        """A Sealer seals under the current key, opens old blobs, and rewraps them."""
        old, new = KeyEncryptionKey.generate(), KeyEncryptionKey.generate()
        legacy = Sealer(old).seal(PLAINTEXT, aad=AAD)
        sealer = Sealer(new, previous=[old])
        assert sealer.open(legacy, aad=AAD) == PLAINTEXT
        assert sealer.needs_rewrap(legacy)
        moved = sealer.rewrap(legacy, aad=AAD)
        assert not sealer.needs_rewrap(moved)
        assert Sealer(new).open(moved, aad=AAD) == PLAINTEXT
        assert sealer.rewrap(moved, aad=AAD) is moved
        with pytest.raises(UnknownKeyEncryptionKeyError):
            Sealer(new).rewrap(legacy, aad=AAD)


class TestKeyEncryptionKey:
    def test_text_forms(self) -> None:
        """token_urlsafe(32), hex, standard base64 and raw SecretBytes all load the same key."""
        raw = secrets.token_bytes(32)
        import base64

        forms = [
            base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
            base64.urlsafe_b64encode(raw).decode(),
            base64.b64encode(raw).decode(),
            raw.hex(),
            raw.hex().upper() + "\n",
        ]
        for text in forms:
            assert KeyEncryptionKey.from_text(text).material() == raw
            assert KeyEncryptionKey.from_secret(SecretStr(text)).material() == raw
        assert KeyEncryptionKey.from_secret(SecretBytes(raw)).material() == raw
        generated = secrets.token_urlsafe(32)
        assert len(KeyEncryptionKey.from_text(generated).material()) == 32

    def test_export_round_trips(self, kek: KeyEncryptionKey) -> None:
        """export() gives the text form that from_secret reads back."""
        exported = kek.export()
        assert isinstance(exported, SecretStr)
        assert KeyEncryptionKey.from_secret(exported) == kek

    @pytest.mark.parametrize(
        "text",
        ["changeme", "", secrets.token_urlsafe(16), secrets.token_hex(16), "é" * 43, "0" * 63],
    )
    def test_short_or_bad_keys_are_refused_with_a_hint(self, text: str) -> None:
        """Anything but 32 bytes is a configuration error saying how to generate a key."""
        with pytest.raises(InvalidKeyEncryptionKeyError) as info:
            KeyEncryptionKey.from_secret(SecretStr(text))
        message = str(info.value)
        assert "secrets.token_urlsafe(32)" in message
        assert isinstance(info.value, ConfigurationError)
        if text:
            assert text not in message

    def test_raw_key_of_wrong_size(self) -> None:
        """16 raw bytes are not an AES-256 key."""
        with pytest.raises(InvalidKeyEncryptionKeyError, match="exactly 32 bytes"):
            KeyEncryptionKey(bytes(16))

    def test_never_shown(self) -> None:
        """repr(), str() and pickling never expose key material."""
        kek = KeyEncryptionKey.generate()
        text = kek.export().get_secret_value()
        for shown in (repr(kek), str(kek), repr(kek.export()), str(kek.export())):
            assert text not in shown
            assert kek.material().hex() not in shown
        assert kek.kek_id_hex in repr(kek)
        with pytest.raises(TypeError):
            pickle.dumps(kek)

    def test_explicit_id(self) -> None:
        """An explicit id is stored in the envelope and used to pick the key."""
        kek = KeyEncryptionKey.generate(kek_id="2025-q3")
        blob = seal(PLAINTEXT, kek, aad=AAD)
        assert kek_id_of(blob) == b"2025-q3"
        assert open_sealed(blob, {b"2025-q3": kek.material()}, aad=AAD) == PLAINTEXT
        with pytest.raises(InvalidKeyEncryptionKeyError):
            KeyEncryptionKey.generate(kek_id="x" * 65)
