"""CRUD of versioned rules (routing, prefetch), admin only: list, get, versions, save (PUT,
the same content again is not a new version), delete; each change an event that the read
model applies before the answer (publish_visible)."""

# No `from __future__ import annotations`: FastAPI reads the route functions' annotations,
# which name this module's locals (the kind's body model, the name's pattern).
import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel

from api.deps import CallerDep, Services, ServicesDep, publish_visible, require
from infra.auth.permissions import Permission
from infra.readmodels.rules import VersionedRules
from schemas.events import Event

Body = TypeVar("Body", bound=BaseModel)
Rule = TypeVar("Rule", bound=BaseModel)


class RuleKind(Generic[Body, Rule]):
    """What differs between kinds of rule: names, models, events, and the check of a body
    against the rest of the platform (e.g. its nodes exist), 422 with the reason."""

    def __init__(
        self,
        label: str,
        body: type[Body],
        rule: type[Rule],
        read_model: Callable[[Services], VersionedRules[Rule] | None],
        saved: Callable[[Rule, str], Event],
        deleted: Callable[[str, int, str], Event],
        check: Callable[[Services, Body], None],
        # What else follows a save or a deletion (e.g. the rule's Temporal Schedule).
        after_save: Callable[[Services, Rule], Awaitable[None]] | None = None,
        after_delete: Callable[[Services, str], Awaitable[None]] | None = None,
    ) -> None:
        self.label, self.body, self.rule = label, body, rule
        self.read_model, self.saved, self.deleted, self.check = read_model, saved, deleted, check
        self.after_save, self.after_delete = after_save, after_delete

    def rules_of(self, services: Services) -> VersionedRules[Rule]:
        found = self.read_model(services)
        if found is None:
            raise HTTPException(503, f"the {self.label} read model is not in this API process")
        return found


def no_check(services: Services, body: BaseModel) -> None:
    """For kinds whose bodies name nothing outside themselves (their model checks them)."""


def build_router(prefix: str, tag: str, kind: RuleKind[Any, Any], name_pattern: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[tag], dependencies=[require(Permission.ADMIN)])
    rule_name = Annotated[str, Path(pattern=name_pattern)]
    label = kind.label

    async def list_rules(services: ServicesDep) -> list[Any]:
        return kind.rules_of(services).rules()

    async def get_rule(name: rule_name, services: ServicesDep) -> Any:
        rule = kind.rules_of(services).rule(name)
        if rule is None:
            raise HTTPException(404, f"no {label} rule {name}")
        return rule

    async def rule_versions(name: rule_name, services: ServicesDep) -> list[Any]:
        """Every version the rule had, newest first (also after it was deleted)."""
        versions = await asyncio.to_thread(kind.rules_of(services).versions, name)
        if not versions:
            raise HTTPException(404, f"no {label} rule {name} was ever saved")
        return versions

    async def save_rule(
        name: rule_name,
        body: kind.body,  # type: ignore[name-defined]
        services: ServicesDep,
        caller: CallerDep,
    ) -> Any:
        """Make the rule or replace it; the same content again is not a new version."""
        rules = kind.rules_of(services)
        kind.check(services, body)
        current = rules.rule(name)
        if current is not None and kind.body(**current.model_dump()) == body:
            return current
        version = await asyncio.to_thread(rules.last_version, name) + 1
        rule = kind.rule(
            name=name,
            version=version,
            saved_at=datetime.now(UTC),
            saved_by=caller.name,
            **body.model_dump(),
        )
        await publish_visible(services, kind.saved(rule, caller.name))
        if kind.after_save is not None:
            await kind.after_save(services, rule)
        return rule

    async def delete_rule(name: rule_name, services: ServicesDep, caller: CallerDep) -> None:
        rule = kind.rules_of(services).rule(name)
        if rule is None:
            raise HTTPException(404, f"no {label} rule {name}")
        await publish_visible(services, kind.deleted(name, rule.version, caller.name))
        if kind.after_delete is not None:
            await kind.after_delete(services, name)

    router.add_api_route("", list_rules, methods=["GET"], response_model=list[kind.rule])  # type: ignore[name-defined]
    router.add_api_route("/{name}", get_rule, methods=["GET"], response_model=kind.rule)
    router.add_api_route(
        "/{name}/versions",
        rule_versions,
        methods=["GET"],
        response_model=list[kind.rule],  # type: ignore[name-defined]
    )
    router.add_api_route("/{name}", save_rule, methods=["PUT"], response_model=kind.rule)
    router.add_api_route("/{name}", delete_rule, methods=["DELETE"], status_code=204)
    return router
