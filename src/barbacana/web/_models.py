"""Strict request and response models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """Base for request bodies: unknown fields are refused and nothing is coerced.

    ``"5"``, ``true`` or ``1.5`` for an ``int`` field is a 422 naming the field,
    which is what schemathesis and a careful client expect from the schema.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        # A NUL character is never meaningful text, and PostgreSQL refuses it in
        # text columns: refuse it here, naming nothing stored.
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, str) and "\x00" in value:
                    raise ValueError(f"{key} contains a NUL character")
        return data
