"""The PDF of an invoice whose office supplied none: a plain French invoice drawn with reportlab.

Pure (bytes in, bytes out); the caller runs it in a thread, since drawing is CPU work.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from shared.contracts.values import format_date, format_euros


@dataclass(frozen=True)
class InvoiceDocument:
    town_name: str
    town_url: str
    contact_email: str
    regie_name: str
    payfip_client_number: str
    number: str
    issued_on: date
    due_on: date | None
    amount_cents: int
    object: str
    debtor_name: str
    debtor_reference: str
    payfip_reference: str
    payfip_year: int


def _money(cents: int) -> str:
    # The standard PDF fonts know the euro sign but not the narrow no-break space used on pages.
    return format_euros(cents).replace("\u202f", " ").replace("\u00a0", " ")


def render_invoice_pdf(doc: InvoiceDocument) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, pageCompression=1, invariant=1)
    pdf.setTitle(f"Facture {doc.number}")
    pdf.setAuthor(doc.town_name)
    pdf.setSubject(doc.object)
    pdf.setCreator("Le portail des factures")
    width, height = A4
    left = 20 * mm
    right = width - 20 * mm

    # Header: the town, then the régie that issues the invoice.
    pdf.setFillColor(colors.HexColor("#000091"))
    pdf.rect(0, height - 32 * mm, width, 32 * mm, stroke=0, fill=1)
    pdf.setFillColor(colors.white)
    pdf.setFont("Helvetica-Bold", 18)
    pdf.drawString(left, height - 16 * mm, doc.town_name)
    pdf.setFont("Helvetica", 11)
    pdf.drawString(left, height - 24 * mm, doc.regie_name)

    pdf.setFillColor(colors.black)
    y = height - 48 * mm
    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(left, y, f"Facture n° {doc.number}")
    pdf.setFont("Helvetica", 10)
    pdf.drawRightString(right, y, f"Émise le {format_date(doc.issued_on)}")

    # The debtor, where an envelope's window would show it.
    y -= 16 * mm
    pdf.setFont("Helvetica", 9)
    pdf.setFillColor(colors.HexColor("#555555"))
    pdf.drawString(width / 2, y, "Redevable")
    pdf.setFillColor(colors.black)
    pdf.setFont("Helvetica-Bold", 12)
    pdf.drawString(width / 2, y - 6 * mm, doc.debtor_name)
    pdf.setFont("Helvetica", 9)
    pdf.drawString(width / 2, y - 11 * mm, f"Référence redevable : {doc.debtor_reference}")

    # The invoice's lines: one, its object and amount.
    y -= 30 * mm
    pdf.setFillColor(colors.HexColor("#eeeeee"))
    pdf.rect(left, y - 2 * mm, right - left, 8 * mm, stroke=0, fill=1)
    pdf.setFillColor(colors.black)
    pdf.setFont("Helvetica-Bold", 10)
    pdf.drawString(left + 3 * mm, y, "Objet")
    pdf.drawRightString(right - 3 * mm, y, "Montant")
    y -= 10 * mm
    pdf.setFont("Helvetica", 10)
    pdf.drawString(left + 3 * mm, y, doc.object[:95])
    pdf.drawRightString(right - 3 * mm, y, _money(doc.amount_cents))
    y -= 6 * mm
    pdf.setStrokeColor(colors.HexColor("#cccccc"))
    pdf.line(left, y, right, y)
    y -= 10 * mm
    pdf.setFont("Helvetica-Bold", 12)
    pdf.drawString(left + 3 * mm, y, "Total à payer")
    pdf.drawRightString(right - 3 * mm, y, _money(doc.amount_cents))
    y -= 8 * mm
    pdf.setFont("Helvetica", 10)
    if doc.due_on is not None:
        pdf.drawString(left + 3 * mm, y, f"À régler avant le {format_date(doc.due_on)}")

    # How to pay: online through the portal (PayFiP), with what PayFiP's screen will show.
    y -= 20 * mm
    pdf.setFont("Helvetica-Bold", 11)
    pdf.drawString(left, y, "Payer en ligne")
    pdf.setFont("Helvetica", 10)
    lines = [
        f"Sur le portail des factures : {doc.town_url}",
        f"Identifiant collectivité : {doc.payfip_client_number}",
        f"Référence de la facture : {doc.payfip_reference}    Exercice : {doc.payfip_year}",
    ]
    for line in lines:
        y -= 6 * mm
        pdf.drawString(left, y, line)

    # Footer: who to write to.
    pdf.setFont("Helvetica", 8)
    pdf.setFillColor(colors.HexColor("#555555"))
    pdf.drawString(left, 15 * mm, f"{doc.town_name} — service de facturation — {doc.contact_email}")
    pdf.drawRightString(right, 15 * mm, "Document établi par le portail des factures")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
