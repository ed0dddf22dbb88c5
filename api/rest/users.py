"""Local users and API keys (admin only). Every change is an event on the log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field

from api.deps import CallerDep, Services, ServicesDep, publish_visible, require
from infra.auth.api_keys import new_api_key
from infra.auth.passwords import hash_password
from infra.auth.permissions import Permission, Role
from infra.readmodels.security import SecurityProjection
from schemas.events import ApiKeyCreated, ApiKeyRevoked, UserDeleted, UserSaved
from schemas.security import USERNAME_PATTERN, ApiKey, RoleBinding, StudyScope, User

router = APIRouter(prefix="/api", tags=["users"], dependencies=[require(Permission.ADMIN)])

UsernamePath = Annotated[str, Path(pattern=USERNAME_PATTERN)]
RoleName = Annotated[str, Field(pattern="^(" + "|".join(r.value for r in Role) + ")$")]


class BindingBody(BaseModel):
    role: RoleName
    scope: StudyScope


class UserBody(BaseModel):
    """A user to create or replace; `password` may be left out when replacing."""

    password: str | None = Field(default=None, min_length=12, max_length=256)
    roles: list[RoleName] = Field(default_factory=list)
    # Roles over some studies only, e.g. {"role": "radiologist", "scope": {"institutions":
    # ["St. Mary"]}}: see docs/security.md "Scoping".
    bindings: list[BindingBody] = Field(default_factory=list, max_length=50)
    display_name: str = ""
    disabled: bool = False


class UserView(BaseModel):
    username: str
    roles: list[str]
    bindings: list[RoleBinding]
    display_name: str
    disabled: bool


class ApiKeyBody(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    roles: list[RoleName]
    expires_in_days: int | None = Field(default=90, ge=1, le=3650)


class ApiKeyView(BaseModel):
    key_id: str
    name: str
    owner: str
    roles: list[str]
    expires_at: datetime | None
    revoked: bool


class NewApiKey(ApiKeyView):
    """The key itself is shown once, here; only its hash is kept."""

    api_key: str


def _security(services: Services) -> SecurityProjection:
    if services.security is None:
        raise HTTPException(503, "the security read model is not available in this API process")
    return services.security


def _view(user: User) -> UserView:
    return UserView(**user.model_dump(exclude={"password_hash"}))


def _key_view(key: ApiKey) -> ApiKeyView:
    return ApiKeyView(**key.model_dump(exclude={"secret_sha256"}))


@router.get("/users", response_model=list[UserView])
async def list_users(services: ServicesDep) -> list[UserView]:
    return [_view(u) for u in _security(services).users()]


@router.put("/users/{username}", response_model=UserView)
async def save_user(
    username: UsernamePath, body: UserBody, services: ServicesDep, caller: CallerDep
) -> UserView:
    """Create a user (a password is required) or replace one (the password is kept if left out)."""
    current = _security(services).user(username)
    if body.password is None and current is None:
        raise HTTPException(400, "a new user needs a password (at least 12 characters)")
    if username == "admin" and (body.disabled or Role.ADMIN.value not in body.roles):
        raise HTTPException(400, "the bootstrap user admin keeps the admin role and stays enabled")
    if body.password:
        password_hash = await asyncio.to_thread(hash_password, body.password)
    else:
        assert current is not None
        password_hash = current.password_hash
    user = User(
        username=username,
        password_hash=password_hash,
        roles=sorted(set(body.roles)),
        bindings=[RoleBinding(role=b.role, scope=b.scope) for b in body.bindings],
        display_name=body.display_name,
        disabled=body.disabled,
    )
    await publish_visible(services, UserSaved(user=user, actor=caller.name))
    return _view(user)


@router.delete("/users/{username}", status_code=204)
async def delete_user(username: UsernamePath, services: ServicesDep, caller: CallerDep) -> None:
    if _security(services).user(username) is None:
        raise HTTPException(404, f"no user {username}")
    if username == "admin":
        raise HTTPException(400, "the bootstrap user admin cannot be deleted")
    await publish_visible(services, UserDeleted(username=username, actor=caller.name))


@router.get("/api-keys", response_model=list[ApiKeyView])
async def list_api_keys(services: ServicesDep) -> list[ApiKeyView]:
    return [_key_view(k) for k in _security(services).api_keys()]


@router.post("/api-keys", response_model=NewApiKey, status_code=201)
async def create_api_key(body: ApiKeyBody, services: ServicesDep, caller: CallerDep) -> NewApiKey:
    """Issue a key with these roles; the answer is the only time the key is shown."""
    key_id, secret_key, digest = new_api_key()
    expires = (
        datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    )
    key = ApiKey(
        key_id=key_id,
        name=body.name,
        owner=caller.name,
        secret_sha256=digest,
        roles=sorted(set(body.roles)),
        expires_at=expires,
    )
    await publish_visible(services, ApiKeyCreated(key=key, actor=caller.name))
    return NewApiKey(**_key_view(key).model_dump(), api_key=secret_key)


@router.delete("/api-keys/{key_id}", status_code=204)
async def revoke_api_key(key_id: str, services: ServicesDep, caller: CallerDep) -> None:
    if _security(services).api_key(key_id) is None:
        raise HTTPException(404, f"no API key {key_id}")
    await publish_visible(services, ApiKeyRevoked(key_id=key_id, actor=caller.name))
