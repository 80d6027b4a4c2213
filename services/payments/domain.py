"""Domain of the payments service."""

from __future__ import annotations
