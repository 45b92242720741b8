"""An OpenAPI 3.1 document generated from a route table and its pydantic models."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from visitlens.contracts import MODELS, EventType
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


@dataclass(frozen=True, slots=True)
class EventRoute:
    """A CloudEvent entry point (structured mode documented; binary mode carries the same
    attributes as ``ce-`` headers)."""

    path: str
    summary: str
    event_types: tuple[EventType, ...]
    responses: dict[str, str]
    security: str = "bearer"


def _cloudevent_schema(types: tuple[EventType, ...], refs: dict[EventType, str]) -> dict[str, Any]:
    attribute = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"^[^\x00-\x1f]+$"}
    data: dict[str, Any] = (
        {"anyOf": [{"$ref": refs[t]} for t in types]} if types else {"type": "object"}
    )
    return {
        "type": "object",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": attribute,
            "source": attribute,
            "type": {"enum": [t.value for t in types]} if types else attribute,
            "subject": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "authtoken": {"type": "string", "description": "the worker's token via a broker"},
            "data": data,
        },
    }


def add_event_routes(document: dict[str, Any], routes: Sequence[EventRoute]) -> dict[str, Any]:
    """``document`` with the CloudEvent entry points, their data schemas and security schemes."""
    models = {t: MODELS[t] for route in routes for t in route.event_types}
    schemas = document["components"]["schemas"]
    refs: dict[EventType, str] = {}
    for event_type, model in sorted(models.items(), key=lambda kv: kv[0].value):
        name = "Event_" + event_type.schema_name.replace(".", "_")
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
        refs[event_type] = _REF.format(model=name)
    for route in routes:
        responses: dict[str, Any] = {
            code: {"description": text} for code, text in route.responses.items()
        }
        for code, text in _ERRORS.items():
            if code != "403" or route.security == "bearer":
                responses[code] = {
                    "description": text,
                    "content": {"application/problem+json": {"schema": _PROBLEM}},
                }
        for code in ("400", "401", "413"):  # the gateway's own refusals are plain JSON
            if route.security != "bearer":
                responses[code] = {"description": _ERRORS[code]}
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _CONVERTOR.findall(route.path)
        ]
        op: dict[str, Any] = {
            "summary": route.summary,
            "tags": ["events"],
            "operationId": "events_" + route.path.strip("/").replace("/", "_").strip("{}"),
            "requestBody": {
                "required": True,
                "content": {
                    "application/cloudevents+json": {
                        "schema": _cloudevent_schema(route.event_types, refs)
                    }
                    if route.event_types or route.security != "webhook"
                    else {"type": "object"},
                },
            },
            "responses": responses,
            "security": [{route.security: []}],
        }
        if route.security == "webhook":
            op["requestBody"]["content"] = {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["Records"],
                        "properties": {"Records": {"type": "array", "items": {"type": "object"}}},
                    }
                }
            }
        if params:
            op["parameters"] = params
        document["paths"].setdefault(_CONVERTOR.sub(r"{\1}", route.path), {})["post"] = op
    document["components"]["securitySchemes"].update(
        {
            "publisher": {
                "type": "http",
                "scheme": "bearer",
                "description": "a token for the broker's audience (ADR 0010)",
            },
            "webhook": {
                "type": "http",
                "scheme": "bearer",
                "description": "the MinIO webhook's auth_token (ADR 0010)",
            },
        }
    )
    return document
