"""The chat service's own schema: private rooms and their member lists.

Rooms open by role are configuration (``websocket.rooms``) and have no rows.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, MetaData, String, Table

metadata = MetaData()

rooms = Table(
    "chat_rooms",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner_id", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)

members = Table(
    "chat_members",
    metadata,
    Column("room", String(64), ForeignKey("chat_rooms.name"), primary_key=True),
    Column("user_id", String(256), primary_key=True),
    Column("added_at", Float, nullable=False),
)
