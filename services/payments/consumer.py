"""Which events the payments service reacts to, and the handler for each.

Towns give the public address the resident comes back to; the invoices' closing facts let a start refuse
an invoice even if the invoices service's answer were stale, and flag a payment of a closed invoice.
"""

from __future__ import annotations

from services.payments import handlers
from shared.contracts import events
from shared.plumbing.inbox import Subscription

SUBSCRIPTIONS: list[Subscription] = [
    Subscription(events.TownConfigured, handlers.record_town),
    Subscription(events.InvoiceCancelled, handlers.record_invoice_cancelled),
    Subscription(events.InvoiceSettled, handlers.record_invoice_settled),
    Subscription(events.PaymentDeclared, handlers.record_payment_declared),
    Subscription(events.DeclarationAnswered, handlers.record_declaration_answered),
]
