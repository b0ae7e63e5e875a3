"""OpenAPI helpers: problem+json error responses, and request bodies a route parses by hand."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict

from app.core.problems import PROBLEM_MEDIA_TYPE

REF_TEMPLATE = "#/components/schemas/{model}"

_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing, malformed, unknown or revoked API key",
    404: "No such object for this tenant",
    409: "Conflicts with the object's current state",
    413: "Request or upload larger than the configured limit",
    422: "Invalid request; `errors` lists each location and message",
    429: "Too many jobs in flight for this tenant",
}


class ProblemDetails(BaseModel):
    """RFC 9457 problem details; extra members (`errors`, `line`, `index`, ...) depend on the problem."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status documented as application/problem+json."""
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": REF_TEMPLATE.format(model="ProblemDetails")}}},
        }
        for status in statuses
    }


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A `$ref` to `model`, for `openapi_extra` of a route that reads its body itself."""
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def install_openapi(app: FastAPI, extra_models: list[type[BaseModel]]) -> None:
    """Generate the schema once, adding models that routes reference only through `openapi_extra`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        models: list[type[BaseModel]] = [ProblemDetails, *extra_models]
        for model in models:
            model_schema = model.model_json_schema(ref_template=REF_TEMPLATE)
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
