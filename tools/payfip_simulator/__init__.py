"""PayFiP simulator: a stand-in for DGFiP's PayFiP web service and payment page, for development and tests.

Written from the protocol page (shared/design/payfip.md) only, independently of the portal's PayFiP
client, so that a misunderstanding in one is caught by the other. Run it with
`python -m tools.payfip_simulator`; build it in tests with `app.create_app(settings)`.
"""
