"""Tests of barbacana.tokens."""
