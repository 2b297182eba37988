"""/v1/agents.

Agents sit below numbers, so whether numbers still use an agent (which refuses its deletion) is
asked of the function the app passes to ``make_router``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from numberplane.agents import service
from numberplane.agents.schemas import AgentCreate, AgentRead, AgentUpdate, AgentVersionRead
from numberplane.kernel.deps import actor_for, get_db
from numberplane.kernel.pagination import Page
from numberplane.tenancy.auth import Principal, require_principal

_routes = APIRouter(prefix="/v1/agents", tags=["agents"])


@_routes.post("", status_code=201, response_model=AgentRead, summary="Create an agent (version 1)")
async def create_agent(
    body: AgentCreate, request: Request, principal: Principal = Depends(require_principal)
) -> AgentRead:
    return await service.create_agent(db=get_db(request), actor=actor_for(request, principal), data=body)


@_routes.get("", response_model=Page[AgentRead], summary="List agents, newest first")
async def list_agents(
    request: Request,
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = None,
    principal: Principal = Depends(require_principal),
) -> Page[AgentRead]:
    return await service.list_agents(db=get_db(request), org_id=principal.org_id, limit=limit, cursor=cursor)


@_routes.get("/{agent_id}", response_model=AgentRead)
async def get_agent(
    agent_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> AgentRead:
    return await service.get_agent(db=get_db(request), org_id=principal.org_id, agent_id=agent_id)


@_routes.get("/{agent_id}/versions/{version}", response_model=AgentVersionRead)
async def get_agent_version(
    agent_id: str,
    request: Request,
    version: int = Path(ge=1, le=2**31 - 1),  # a bound, so no value overflows the database
    principal: Principal = Depends(require_principal),
) -> AgentVersionRead:
    return await service.get_agent_version(
        db=get_db(request), org_id=principal.org_id, agent_id=agent_id, version=version
    )


@_routes.patch("/{agent_id}", response_model=AgentRead, summary="Update an agent (makes a new version)")
async def update_agent(
    agent_id: str, body: AgentUpdate, request: Request, principal: Principal = Depends(require_principal)
) -> AgentRead:
    return await service.update_agent(
        db=get_db(request), actor=actor_for(request, principal), agent_id=agent_id, patch=body
    )


def make_router(*, agent_users: service.AgentUsers) -> APIRouter:
    """Every /v1/agents route; ``agent_users`` lists the live numbers that use an agent."""
    router = APIRouter(routes=list(_routes.routes))  # its routes, not a branch: see app.serve_routes

    @router.delete(
        "/v1/agents/{agent_id}", status_code=204, tags=["agents"], summary="Delete an agent no number uses"
    )
    async def delete_agent(
        agent_id: str, request: Request, principal: Principal = Depends(require_principal)
    ) -> Response:
        await service.delete_agent(
            db=get_db(request), actor=actor_for(request, principal), agent_id=agent_id, in_use=agent_users
        )
        return Response(status_code=204)

    return router
