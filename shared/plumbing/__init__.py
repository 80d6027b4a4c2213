"""Plumbing shared by every service: settings, logs, database, outbox, bus, inbox, HTTP edges.

Nothing in here knows about towns, invoices or payments; it moves facts and bytes reliably.
"""
