"""Barbacana."""
