"""Invoice simulations: `/v1/simulations/scenarios` (CRUD), `/runs` and `/batches`.

Scenarios are sent as JSON, or as YAML with ``Content-Type: application/yaml``. Runs execute at
once (through the real ingest path, in a scratch tenant) and answer with their result.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from stripemeter.api import schemas
from stripemeter.api.auth import check_tenant, require
from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON
from stripemeter.api.routes._body import read_object, reject_unknown
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.scopes import Scope
from stripemeter.services.keys import Principal
from stripemeter.services.read_params import reject_unknown as reject_unknown_query
from stripemeter.services.scenarios import load_document
from stripemeter.services.simulations import SimulationService

router = APIRouter(tags=["simulations"])

# Scenarios are pricing configuration (mappings:write); runs only read it and write their own
# record in a scratch tenant, so reading usage (usage:read) is enough to run and to look.
SCENARIOS_WRITE_SCOPE = Scope.MAPPINGS_WRITE
SIMULATIONS_SCOPE = Scope.USAGE_READ
MAX_OFFSET = 1_000_000  # pages deeper than this are refused (400), never sent to the database


class RunIn(BaseModel):
    """A stored scenario's id, or an inline scenario."""

    model_config = ConfigDict(extra="forbid")

    tenantId: str | None = None
    scenarioId: str | None = None
    scenario: dict[str, Any] | None = Field(None, description="An inline scenario document.")
    name: str | None = Field(None, max_length=255)


class BatchIn(BaseModel):
    """Several stored scenarios run together."""

    model_config = ConfigDict(extra="forbid")

    tenantId: str | None = None
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    scenarioIds: list[str] = Field(min_length=1, max_length=100)


def _service(request: Request) -> SimulationService:
    return services_of(request).pricing.simulations


async def _scenario_body(request: Request, principal: Principal) -> dict[str, Any]:
    if "yaml" in request.headers.get("content-type", ""):
        document = load_document((await request.body()).decode("utf-8", "replace"))
        check_tenant(principal, document.pop("tenantId", None))
        return document
    body = await read_object(request, principal)
    body.pop("tenantId", None)
    return body


@router.post(
    "/v1/simulations/scenarios",
    summary="Store a scenario",
    status_code=201,
    responses=schemas.ERRORS,
)
async def create_scenario(
    request: Request, principal: Principal = Depends(require(SCENARIOS_WRITE_SCOPE))
) -> Response:
    """Check and store a scenario (JSON, or YAML with Content-Type application/yaml)."""
    document = await _scenario_body(request, principal)
    view = await _service(request).create_scenario(principal.tenant_id, document)
    return JSON(view, status_code=201)


@router.get("/v1/simulations/scenarios", summary="List scenarios", responses=schemas.ERRORS)
async def list_scenarios(
    request: Request,
    active: bool | None = Query(None),
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    tenant_id: str | None = Query(None, alias="tenantId"),
    principal: Principal = Depends(require(SIMULATIONS_SCOPE)),
) -> Response:
    """The tenant's scenarios, newest first."""
    reject_unknown_query(
        request.query_params.keys(), frozenset({"active", "limit", "offset", "tenantId"})
    )
    page = await _service(request).list_scenarios(
        principal.tenant_id, active=active, limit=limit, offset=offset
    )
    return JSON(page)


@router.get(
    "/v1/simulations/scenarios/{scenario_id}", summary="One scenario", responses=schemas.ERRORS
)
async def get_scenario(
    scenario_id: str, request: Request, principal: Principal = Depends(require(SIMULATIONS_SCOPE))
) -> Response:
    """A scenario with its document."""
    return JSON(await _service(request).get_scenario(principal.tenant_id, scenario_id))


@router.put(
    "/v1/simulations/scenarios/{scenario_id}",
    summary="Replace a scenario",
    responses=schemas.ERRORS,
)
async def replace_scenario(
    scenario_id: str,
    request: Request,
    principal: Principal = Depends(require(SCENARIOS_WRITE_SCOPE)),
) -> Response:
    """Replace a scenario's document (checked again)."""
    document = await _scenario_body(request, principal)
    view = await _service(request).replace_scenario(principal.tenant_id, scenario_id, document)
    return JSON(view)


@router.delete(
    "/v1/simulations/scenarios/{scenario_id}",
    summary="Deactivate a scenario",
    status_code=204,
    responses=schemas.ERRORS,
)
async def delete_scenario(
    scenario_id: str,
    request: Request,
    principal: Principal = Depends(require(SCENARIOS_WRITE_SCOPE)),
) -> Response:
    """Soft delete: the scenario is kept for its runs, marked inactive."""
    await _service(request).deactivate_scenario(principal.tenant_id, scenario_id)
    return Response(status_code=204)


@router.post(
    "/v1/simulations/runs",
    summary="Run a scenario",
    status_code=201,
    openapi_extra={"requestBody": schemas.request_body(RunIn)},
    responses=schemas.ERRORS,
)
async def create_run(
    request: Request, principal: Principal = Depends(require(SIMULATIONS_SCOPE))
) -> Response:
    """Run a stored or inline scenario now; the run, its invoices and comparisons are returned."""
    body = await read_object(request, principal)
    reject_unknown(body, {"scenarioId", "scenario", "name"})
    scenario_id = body.get("scenarioId")
    document = body.get("scenario")
    name = body.get("name")
    if scenario_id is not None and not isinstance(scenario_id, str):
        raise InvalidInput("scenarioId must be a string", code="invalid_body", param="scenarioId")
    if document is not None and not isinstance(document, dict):
        raise InvalidInput("scenario must be an object", code="invalid_body", param="scenario")
    if name is not None and not isinstance(name, str):
        raise InvalidInput("name must be a string", code="invalid_body", param="name")
    run = await _service(request).run(
        principal.tenant_id, scenario_id=scenario_id, document=document, name=name
    )
    return JSON(run, status_code=201)


@router.get("/v1/simulations/runs", summary="List runs", responses=schemas.ERRORS)
async def list_runs(
    request: Request,
    scenario_id: str | None = Query(None, alias="scenarioId"),
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    tenant_id: str | None = Query(None, alias="tenantId"),
    principal: Principal = Depends(require(SIMULATIONS_SCOPE)),
) -> Response:
    """The tenant's runs, newest first."""
    reject_unknown_query(
        request.query_params.keys(), frozenset({"scenarioId", "limit", "offset", "tenantId"})
    )
    page = await _service(request).list_runs(
        principal.tenant_id, scenario_id=scenario_id, limit=limit, offset=offset
    )
    return JSON(page)


@router.get("/v1/simulations/runs/{run_id}", summary="One run", responses=schemas.ERRORS)
async def get_run(
    run_id: str, request: Request, principal: Principal = Depends(require(SIMULATIONS_SCOPE))
) -> Response:
    """A run with its scenario snapshot and result."""
    return JSON(await _service(request).get_run(principal.tenant_id, run_id))


@router.post(
    "/v1/simulations/batches",
    summary="Run several scenarios",
    status_code=201,
    openapi_extra={"requestBody": schemas.request_body(BatchIn)},
    responses=schemas.ERRORS,
)
async def create_batch(
    request: Request, principal: Principal = Depends(require(SIMULATIONS_SCOPE))
) -> Response:
    """Run stored scenarios together; the batch says how many passed."""
    body = await read_object(request, principal)
    reject_unknown(body, {"name", "description", "scenarioIds"})
    name = body.get("name")
    ids = body.get("scenarioIds")
    if not isinstance(name, str) or not name:
        raise InvalidInput("name is required", code="invalid_body", param="name")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InvalidInput("scenarioIds must be a list of ids", code="invalid_body",
                           param="scenarioIds")  # fmt: skip
    batch = await _service(request).run_batch(
        principal.tenant_id,
        name=name,
        description=str(body.get("description") or ""),
        scenario_ids=ids,
    )
    return JSON(batch, status_code=201)


@router.get("/v1/simulations/batches/{batch_id}", summary="One batch", responses=schemas.ERRORS)
async def get_batch(
    batch_id: str, request: Request, principal: Principal = Depends(require(SIMULATIONS_SCOPE))
) -> Response:
    """A batch with the outcome of each of its runs."""
    return JSON(await _service(request).get_batch(principal.tenant_id, batch_id))
