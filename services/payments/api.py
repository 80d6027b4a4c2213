"""HTTP routes of the payments service."""

from __future__ import annotations

from shared.plumbing.openapi import ApiRoutes

routes = ApiRoutes(title="Le portail des factures: payments service")
