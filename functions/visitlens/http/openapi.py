"""An OpenAPI 3.1 document generated from a route table and its pydantic models."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from visitlens.http.router import Route

_CONVERTOR = re.compile(r"\{([a-z_]+)(?::[a-z]+)?\}")
_REF = "#/components/schemas/{model}"

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_ERRORS = {
    "400": "Malformed request",
    "401": "Missing or invalid bearer token",
    "403": "Role or scope does not allow this",
    "404": "Not found (or outside the caller's tenant)",
    "409": "Conflicts with an existing object",
    "413": "Body too large",
    "415": "Not application/json",
    "422": "Invalid fields (each one named)",
}


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }


def build(routes: Sequence[Route], title: str, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = set()
    for route in routes:
        for model in (route.body, route.response):
            if model is not None:
                models.add(model)
    ordered = sorted(models, key=lambda m: m.__name__)
    refs, defs = models_json_schema([(m, "validation") for m in ordered], ref_template=_REF)
    out_refs, out_defs = models_json_schema(
        [(m, "serialization") for m in ordered], ref_template=_REF
    )
    schemas = {**defs.get("$defs", {}), **out_defs.get("$defs", {})}
    schemas["Problem"] = _problem_schema()

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = _CONVERTOR.sub(r"{\1}", route.path)
        op: dict[str, Any] = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": f"{route.handler.__module__.rsplit('.', 1)[-1]}_{route.handler.__name__}",
        }
        params: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
            }
            for name in _CONVERTOR.findall(route.path)
        ]
        if route.query is not None:
            query_schema = route.query.model_json_schema()
            required = set(query_schema.get("required", []))
            for name, schema in query_schema.get("properties", {}).items():
                params.append(
                    {"name": name, "in": "query", "required": name in required, "schema": schema}
                )
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
            }
        responses: dict[str, Any] = {}
        if route.response is not None:
            responses[str(route.status)] = {
                "description": "OK",
                "content": {
                    "application/json": {"schema": out_refs[(route.response, "serialization")]}
                },
            }
        else:
            responses[str(route.status)] = {"description": "Done"}
        for code, text in _ERRORS.items():
            if route.public and code in ("401", "403"):
                continue
            responses[code] = {
                "description": text,
                "content": {"application/problem+json": {"schema": _PROBLEM}},
            }
        op["responses"] = responses
        if not route.public:
            op["security"] = [{"bearer": []}]
            if route.roles:
                op["description"] = "Roles: " + ", ".join(
                    ["system_admin", *(r.value for r in route.roles if r.value != "system_admin")]
                )
        paths.setdefault(path, {})[route.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
