"""Routes declared once, served by aiohttp and described in OpenAPI 3.1 from their pydantic models.

A service's `api.py` declares each route with its body, query and answer models; the same declaration
registers the aiohttp handler and writes the OpenAPI description served at `/openapi.json`, so the
description cannot drift from the code (and schemathesis can fuzz against it).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}

_ERROR_TEXT = {
    400: "Requête invalide",
    401: "Authentification requise",
    403: "Accès refusé",
    404: "Introuvable",
    409: "Conflit",
    413: "Trop volumineux",
    415: "Type de contenu non pris en charge",
    422: "Données invalides",
    429: "Trop de requêtes",
    503: "Service indisponible",
}


@dataclass
class _Operation:
    method: str
    path: str
    summary: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    errors: Sequence[int]
    security: str | None
    tags: Sequence[str]
    raw_body: dict[str, Any] | None
    raw_response: dict[str, Any] | None


@dataclass
class ApiRoutes:
    title: str
    version: str = "1"
    security_schemes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _table: web.RouteTableDef = field(default_factory=web.RouteTableDef)
    _operations: list[_Operation] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        errors: Sequence[int] = (),
        security: str | None = None,
        tags: Sequence[str] = (),
        raw_body: dict[str, Any] | None = None,
        raw_response: dict[str, Any] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare a route. `raw_body` / `raw_response` describe non-JSON media (CSV, PDF) as
        `{media_type: schema}`."""

        def register(handler: Handler) -> Handler:
            self._table.route(method, path)(handler)
            self._operations.append(
                _Operation(
                    method.lower(),
                    path,
                    summary,
                    body,
                    query,
                    response,
                    status,
                    errors,
                    security,
                    tags,
                    raw_body,
                    raw_response,
                )
            )
            return handler

        return register

    def setup(self, app: web.Application) -> None:
        app.router.add_routes(self._table)
        document = self.document()

        async def openapi(_request: web.Request) -> web.Response:
            return web.json_response(document)

        app.router.add_get("/openapi.json", openapi)

    def document(self) -> dict[str, Any]:
        components: dict[str, Any] = {"Error": ERROR_SCHEMA}
        paths: dict[str, dict[str, Any]] = {}
        for op in self._operations:
            operation: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(op)}
            if op.tags:
                operation["tags"] = list(op.tags)
            parameters = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in re.findall(r"{(\w+)}", op.path)
            ]
            if op.query is not None:
                schema = _schema(op.query, components)
                required = set(schema.get("required", []))
                for name, prop in schema.get("properties", {}).items():
                    parameters.append(
                        {"name": name, "in": "query", "required": name in required, "schema": prop}
                    )
            if parameters:
                operation["parameters"] = parameters
            if op.body is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(op.body, components)}},
                }
            elif op.raw_body is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {media: {"schema": schema} for media, schema in op.raw_body.items()},
                }
            responses: dict[str, Any] = {}
            if op.response is not None:
                responses[str(op.status)] = {
                    "description": "OK",
                    "content": {"application/json": {"schema": _ref(op.response, components)}},
                }
            elif op.raw_response is not None:
                responses[str(op.status)] = {
                    "description": "OK",
                    "content": {media: {"schema": schema} for media, schema in op.raw_response.items()},
                }
            else:
                responses[str(op.status)] = {"description": "OK"}
            error_codes = set(op.errors) | ({422, 415} if op.body is not None else set())
            if "{" in op.path:
                error_codes.add(404)  # an id in the path may name nothing (or nothing the caller may see)
            if op.query is not None:
                error_codes.add(422)
            if op.security:
                error_codes.add(401)
            for code in sorted(error_codes):
                responses[str(code)] = {
                    "description": _ERROR_TEXT.get(code, "Erreur"),
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            operation["responses"] = responses
            if op.security:
                operation["security"] = [{op.security: []}]
            paths.setdefault(op.path, {})[op.method] = operation
        document: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {"schemas": components},
        }
        if self.security_schemes:
            document["components"]["securitySchemes"] = self.security_schemes
        return document


def _operation_id(op: _Operation) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9]+", "_", op.path).strip("_")
    return f"{op.method}_{cleaned}"


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    return schema


def _ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    components.setdefault(model.__name__, _schema(model, components))
    return {"$ref": f"#/components/schemas/{model.__name__}"}
