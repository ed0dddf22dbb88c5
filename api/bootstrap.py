"""The first administrator: `admin`, with the password from PACS_AUTH__ADMIN_PASSWORD.

When that is unset on first start, a random password is generated and written to
<data_dir>/secrets/admin-password (mode 0600); `make up` prints where. There is no default
password. When it is set, it is applied at every start (and `admin` re-enabled with the
admin role), so setting it is also how a lost admin password is replaced.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from api.deps import Services, publish_visible
from infra.auth.passwords import hash_password, verify_password
from infra.auth.permissions import Role
from infra.auth.secrets import load_or_create
from schemas.events import UserSaved
from schemas.security import User

log = logging.getLogger(__name__)

ADMIN = "admin"
CATCH_UP_SECONDS = 120.0


def admin_password_file(services: Services) -> Path:
    return services.settings.secrets_dir / "admin-password"


async def ensure_admin(services: Services) -> None:
    """Create or repair `admin` once the security read model has caught up with the log."""
    assert services.projector is not None and services.security is not None
    if not await services.projector.wait_caught_up(CATCH_UP_SECONDS):
        log.error("the read models did not catch up in %.0f s; admin not checked", CATCH_UP_SECONDS)
        return
    current = services.security.user(ADMIN)
    configured = services.settings.auth.admin_password
    if configured is not None:
        password = configured.get_secret_value()
        healthy = (
            current is not None
            and not current.disabled
            and Role.ADMIN.value in current.roles
            and await asyncio.to_thread(verify_password, current.password_hash, password)
        )
        if healthy:
            return
    elif current is not None:
        return
    else:
        path = admin_password_file(services)
        password, created = await asyncio.to_thread(load_or_create, path)
        if created:
            log.warning("generated a password for the user admin: it is in %s", path)
    user = User(
        username=ADMIN,
        password_hash=await asyncio.to_thread(hash_password, password),
        roles=[Role.ADMIN.value],
        display_name="Administrator",
    )
    await publish_visible(services, UserSaved(user=user, actor="bootstrap"))
    log.info("user admin %s", "created" if current is None else "password and role applied")
