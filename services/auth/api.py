"""HTTP routes of the auth service (called by the gateway only)."""

from __future__ import annotations

from shared.plumbing.openapi import ApiRoutes

routes = ApiRoutes(title="Le portail des factures: auth service")
