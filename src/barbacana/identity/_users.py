"""User accounts: create, find, disable, change roles."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from .._clock import Clock, system_clock
from ..storage import Database
from ._passwords import Passwords
from ._revocations import RevocationLog
from ._tables import users
from .errors import InvalidRequestError, UserExistsError, UserNotFoundError

__all__ = ["User", "UserStore", "validate_password", "validate_username"]

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024


def validate_username(name: str) -> str:
    """Lowercase, 2-64 characters of ``a-z0-9._-``, starting with a letter or digit."""
    name = name.strip().lower()
    if not _USERNAME.match(name):
        raise InvalidRequestError(
            "username must be 2-64 characters of a-z, 0-9, '.', '_' or '-'", field="username"
        )
    return name


def validate_password(password: str) -> str:
    """At least 12 characters (NIST SP 800-63B §3.1.1.2), at most 1024."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidRequestError(
            f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            field="password",
        )
    return password


@dataclass(frozen=True, slots=True)
class User:
    """A user account; the password hash never leaves the store."""

    id: str
    username: str
    roles: tuple[str, ...]
    disabled: bool
    created_at: float
    tokens_valid_after: float


def _user(m: Mapping[Any, Any]) -> User:
    return User(
        id=m["id"],
        username=m["username"],
        roles=tuple(m["roles"]),
        disabled=bool(m["disabled"]),
        created_at=m["created_at"],
        tokens_valid_after=m["tokens_valid_after"],
    )


class UserStore:
    """Users in the identity database."""

    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        revocations: RevocationLog,
        clock: Clock = system_clock,
    ) -> None:
        self._db = db
        self._passwords = passwords
        self._revocations = revocations
        self._clock = clock

    async def create(self, username: str, password: str, roles: list[str]) -> User:
        """Create an enabled user.

        Raises:
            InvalidRequestError: The name or password does not meet the rules.
            UserExistsError: The name is taken.
        """
        username = validate_username(username)
        password_hash = await self._passwords.hash(validate_password(password))
        now = self._clock()
        values = {
            "id": str(uuid.uuid4()),
            "username": username,
            "password_hash": password_hash,
            "roles": sorted(set(roles)),
            "disabled": False,
            "created_at": now,
            "tokens_valid_after": 0.0,
        }
        try:
            async with self._db.begin() as conn:
                await conn.execute(insert(users).values(**values))
        except IntegrityError:
            raise UserExistsError(f"a user named {username!r} already exists") from None
        return _user(values)

    async def get(self, user_id: str) -> User:
        """The user with ``user_id``.

        Raises:
            UserNotFoundError: No such user.
        """
        async with self._db.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        if row is None:
            raise UserNotFoundError("no such user")
        return _user(row._mapping)

    async def find(self, username: str) -> tuple[User, str] | None:
        """The user and stored hash for ``username``, or ``None``."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(select(users).where(users.c.username == username.lower()))
            ).first()
        if row is None:
            return None
        return _user(row._mapping), row._mapping["password_hash"]

    async def by_name(self, username: str) -> User:
        """The user named ``username``.

        Raises:
            UserNotFoundError: No such user.
        """
        found = await self.find(username)
        if found is None:
            raise UserNotFoundError("no such user")
        return found[0]

    async def all(self) -> list[User]:
        """Every user, by name."""
        async with self._db.connect() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.username))).all()
        return [_user(row._mapping) for row in rows]

    async def rehash(self, user_id: str, new_hash: str) -> None:
        """Store an upgraded hash (legacy bcrypt → Argon2id)."""
        async with self._db.begin() as conn:
            await conn.execute(
                update(users).where(users.c.id == user_id).values(password_hash=new_hash)
            )

    async def set_disabled(self, user_id: str, disabled: bool) -> User:
        """Disable (or enable) a user; disabling voids every token it holds."""
        await self.get(user_id)
        now = self._clock()
        values: dict[str, object] = {"disabled": disabled}
        if disabled:
            values["tokens_valid_after"] = now
        async with self._db.begin() as conn:
            await conn.execute(update(users).where(users.c.id == user_id).values(**values))
            if disabled:
                await self._revocations.cut_off(conn, user_id, now)
        return await self.get(user_id)

    async def set_roles(self, user_id: str, roles: list[str]) -> User:
        """Replace a user's roles; tokens carrying the old roles stop working."""
        await self.get(user_id)
        now = self._clock()
        async with self._db.begin() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(roles=sorted(set(roles)), tokens_valid_after=now)
            )
            await self._revocations.cut_off(conn, user_id, now)
        return await self.get(user_id)

    async def set_password(self, user_id: str, password: str) -> None:
        """Set a new password; existing sessions end."""
        password_hash = await self._passwords.hash(validate_password(password))
        now = self._clock()
        async with self._db.begin() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(password_hash=password_hash, tokens_valid_after=now)
            )
            await self._revocations.cut_off(conn, user_id, now)
