"""Strict request and response models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """Base for request bodies: unknown fields are refused and nothing is coerced.

    ``"5"``, ``true`` or ``1.5`` for an ``int`` field is a 422 naming the field,
    which is what schemathesis and a careful client expect from the schema.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
