"""The security read model: local users and API keys, in ClickHouse and held in memory.

Every request is checked against it, so lookups are dictionary reads (`documents.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.documents import Documents, Positions
from schemas.events import ApiKeyCreated, ApiKeyRevoked, UserDeleted, UserSaved
from schemas.security import ApiKey, User


class SecurityProjection:
    """Users and API keys; reads are thread-safe and never touch ClickHouse."""

    name = "security"
    tables: tuple[str, ...] = ("security_users", "security_api_keys", "security_positions")

    def __init__(self, clickhouse: ClickHouse) -> None:
        self._users = Documents(clickhouse, "security_users", User)
        self._keys = Documents(clickhouse, "security_api_keys", ApiKey)
        self._positions = Positions(clickhouse, "security_positions")

    # --- Projection protocol (the projector's thread) ---

    def ensure_tables(self) -> None:
        self._users.ensure()
        self._keys.ensure()
        self._positions.ensure()

    def positions(self) -> dict[int, int]:
        return self._positions.read()

    def drop(self) -> None:
        self._users.drop()
        self._keys.drop()
        self._positions.drop()

    def apply(self, records: list[LogRecord]) -> None:
        last: dict[int, int] = {}
        for record in records:
            where = (record.partition, record.offset)
            last[record.partition] = record.offset
            event = record.event
            if isinstance(event, UserSaved):
                self._users.put(event.user.username, event.user, *where)
            elif isinstance(event, UserDeleted):
                self._users.delete(event.username, *where)
            elif isinstance(event, ApiKeyCreated):
                self._keys.put(event.key.key_id, event.key, *where)
            elif isinstance(event, ApiKeyRevoked):
                self._keys.update(
                    event.key_id, lambda k: k.model_copy(update={"revoked": True}), *where
                )
        self._users.flush()
        self._keys.flush()
        self._positions.write(last)

    # --- Reads (any thread) ---

    def user(self, username: str) -> User | None:
        return self._users.get(username)

    def was_deleted(self, username: str) -> bool:
        return self._users.was_deleted(username)

    def users(self) -> list[User]:
        return self._users.all()

    def api_key(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    def api_keys(self) -> list[ApiKey]:
        return self._keys.all()

    def key_usable(self, key: ApiKey, now: datetime | None = None) -> bool:
        moment = now or datetime.now(UTC)
        return not key.revoked and (key.expires_at is None or key.expires_at > moment)
