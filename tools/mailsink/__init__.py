"""A development mail sink: an SMTP server that keeps every message, and pages to read them.

Used by `scripts/dev` (messages also written as .eml files under var/mail/) and, in-process, by the
tests as the SMTP server the notifier delivers to.
"""
