"""Accounts, passwords, link tokens and sessions: rules, no I/O."""

from __future__ import annotations
