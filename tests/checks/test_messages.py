"""Findings, messages, the catalogue and the registry."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from barbacana.checks import (
    CATALOGUE,
    CheckContext,
    Finding,
    InvalidFindingError,
    Message,
    Registry,
    Severity,
    default_registry,
)
from barbacana.settings import Settings


class TestFinding:
    @pytest.mark.parametrize("bad", ["E001", "BRB-X001", "BRB-E01", "BRB-E0001", "brb-e001"])
    def test_malformed_id_is_refused(self, bad: str) -> None:
        """An id is BRB-<E|W|I><three digits>, nothing else."""
        with pytest.raises(InvalidFindingError):
            Finding(bad, "title", "hint")

    @pytest.mark.parametrize(
        ("finding_id", "severity"),
        [("BRB-E001", Severity.ERROR), ("BRB-W002", Severity.WARNING), ("BRB-I003", Severity.INFO)],
    )
    def test_severity_comes_from_the_letter(self, finding_id: str, severity: Severity) -> None:
        """The letter of the id decides the severity; a message carries it."""
        finding = Finding(finding_id, "title", "hint")
        assert finding.severity is severity
        assert finding().severity is severity
        assert finding().is_error is (severity is Severity.ERROR)

    def test_message_carries_detail_target_and_hint(self) -> None:
        """A message names what, where and how to fix; a sharper hint may replace the general."""
        finding = Finding("BRB-W123", "something is off", "turn it on")
        message = finding("x is 3", target="x")
        assert message.to_dict() == {
            "id": "BRB-W123",
            "severity": "warning",
            "title": "something is off",
            "detail": "x is 3",
            "hint": "turn it on",
            "target": "x",
        }
        assert str(message) == "BRB-W123 [x] something is off: x is 3. Fix: turn it on"
        assert finding(hint="do this").hint == "do this"

    def test_severity_parse(self) -> None:
        assert Severity.parse("Warning") is Severity.WARNING
        with pytest.raises(InvalidFindingError):
            Severity.parse("fatal")


class TestCatalogue:
    def test_numbers_are_unique_across_severities(self) -> None:
        """BRB-E010 and BRB-W010 never both exist: the number alone names a finding."""
        numbers = [finding.number for finding in CATALOGUE.values()]
        assert len(numbers) == len(set(numbers))

    def test_every_finding_says_how_to_fix_it(self) -> None:
        """Each id has a title and a fix-it hint, and is filed under its own id."""
        for finding_id, finding in CATALOGUE.items():
            assert finding.id == finding_id
            assert finding.title, finding.id
            assert finding.hint, finding.id

    def test_catalogue_is_read_only(self) -> None:
        with pytest.raises(TypeError):
            CATALOGUE["BRB-E999"] = Finding("BRB-E999", "x", "y")  # type: ignore[index]


MINE = Finding("BRB-W900", "our own rule", "follow it")


def my_check(context: CheckContext) -> Iterator[Message]:
    if context.settings.service_name == "legacy":
        yield MINE("service_name is legacy", target="service_name")


class TestRegistry:
    def context(self, **settings: object) -> CheckContext:
        return CheckContext(settings=Settings(**settings), now=time.time())  # type: ignore[arg-type]

    def test_default_registries_are_independent(self) -> None:
        """Registering on one registry changes no other: there is no global state."""
        first, second = default_registry(), default_registry()
        first.register(my_check, "mine")
        assert my_check in first.checks()
        assert my_check not in second.checks()
        assert "mine" not in default_registry().tags

    def test_own_checks_run_with_the_rest(self) -> None:
        registry = default_registry()
        registry.register(my_check, "mine")
        ids = [m.id for m in registry.run(self.context(service_name="legacy"))]
        assert "BRB-W900" in ids
        assert "BRB-W900" not in [m.id for m in registry.run(self.context())]

    def test_tags_select_checks(self) -> None:
        registry = Registry()
        registry.register(my_check, "mine")
        assert registry.checks({"other"}) == []
        assert registry.checks({"mine", "other"}) == [my_check]
        assert registry.run(self.context(service_name="legacy"), tags={"other"}) == []

    def test_registering_again_replaces_tags(self) -> None:
        registry = Registry()
        registry.register(my_check, "a")
        registry.register(my_check, "b")
        assert registry.checks() == [my_check]
        assert registry.tags == {"b"}

    def test_messages_are_sorted_errors_first(self) -> None:
        def several(_: CheckContext) -> Iterator[Message]:
            yield Finding("BRB-I901", "i", "h")()
            yield Finding("BRB-W902", "w", "h")()
            yield Finding("BRB-E903", "e", "h")()
            yield Finding("BRB-E903", "e", "h")()  # the same message twice is reported once

        registry = Registry()
        registry.register(several)
        assert [m.id for m in registry.run(self.context())] == ["BRB-E903", "BRB-W902", "BRB-I901"]

    def test_every_area_is_registered(self) -> None:
        tags = default_registry().tags
        for area in (
            "tokens",
            "transport",
            "web",
            "cors",
            "ratelimit",
            "audit",
            "secrets",
            "files",
            "outbound",
            "live",
            "environment",
            "database",
        ):
            assert area in tags
