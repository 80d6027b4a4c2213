"""Pages of the gateway, one module per area; each exposes `routes` (an aiohttp RouteTableDef)."""
