"""`python -m tools.guarantees`: write docs/guarantees.md from the last test run.

Each guarantee names the test that proves it; the page shows whether that test passed in the last run
(`test-artifacts/junit.xml`, written by scripts/test), how long it took, and the figures the chaos suite
and the benchmarks recorded (`test-artifacts/chaos/report.json`, the newest `bench/results/*/report.json`).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree  # our own pytest report, not untrusted input
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.processes import ROOT

ARTIFACTS = ROOT / "test-artifacts"
OUT = ROOT / "docs" / "guarantees.md"

A = "tests/accounts/test_account_security.py::"
J = "tests/accounts/test_account_journeys.py::"
E = "tests/foundation/test_event_delivery.py::"
S = "tests/payments/test_settling_payments.py::"
P = "tests/payment_pages/test_paying_one_invoice.py::"
I = "tests/invoices/test_import.py::"  # noqa: E741

GUARANTEES: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Events are never lost nor applied twice",
        [
            (
                "An event written with a state change reaches the consumer and applies once",
                E + "test_event_written_with_state_change_reaches_consumer_and_applies_once",
            ),
            (
                "A rolled-back state change publishes nothing",
                E + "test_rolled_back_state_change_publishes_nothing",
            ),
            (
                "Events written while the broker is unreachable arrive once it is back",
                E + "test_events_written_while_broker_unreachable_are_delivered_once_when_it_returns",
            ),
            (
                "A consumer dying between commit and ack gets a redelivery that changes nothing",
                E + "test_consumer_dying_between_commit_and_ack_gets_a_redelivery_that_changes_nothing",
            ),
            (
                "A poison message is dead-lettered after the delivery limit without blocking the others",
                E + "test_poison_message_is_dead_lettered_after_the_delivery_limit_and_does_not_block_others",
            ),
            (
                "Two replicas share a queue and apply each event once",
                E + "test_two_replicas_share_the_queue_and_apply_each_event_once",
            ),
            (
                "Every binding has a producer, every produced event a consumer",
                "tests/foundation/test_contracts.py::test_every_produced_event_has_a_consumer_so_nothing_stays_unroutable",
            ),
            (
                "Broker killed 3×, connections cut, 4 services killed (-9), database cut: nothing lost or doubled",
                "tests/chaos/test_chaos.py::test_nothing_is_lost_or_applied_twice_through_broker_process_and_database_failures",
            ),
            (
                "SIGTERM under load: auth applies every event once",
                "tests/operations/test_graceful_shutdown.py::test_auth_stopped_while_debtor_events_stream_in_applies_each_of_them_once",
            ),
            (
                "A dead-lettered event replayed once its cause is fixed takes effect once",
                "tests/operations/test_deadletters.py::test_event_that_failed_for_a_cause_since_fixed_is_handled_once_when_replayed",
            ),
        ],
    ),
    (
        "Accounts cannot be guessed, hijacked or brute-forced",
        [
            (
                "Activation and reset answer identically for known and unknown addresses (200 requests)",
                "tests/security/test_attacks.py::test_known_and_unknown_addresses_cannot_be_told_apart_over_200_requests",
            ),
            (
                "Link tokens: 256 bits, stored hashed, spent once under concurrency, only by the POST",
                A + "test_link_tokens_are_long_random_hashed_single_use_and_spent_only_by_the_post",
            ),
            (
                "Links expire (72 h, 30 min, 24 h)",
                A + "test_expired_links_are_refused_and_lifetimes_follow_the_rules",
            ),
            (
                "Passwords: argon2id at OWASP's parameters, town minimum, common ones refused",
                A + "test_password_rules_length_from_the_town_long_phrases_and_common_passwords",
            ),
            (
                "A fresh session id at login; a planted one is worthless",
                A + "test_login_gives_a_fresh_session_id_and_ignores_a_planted_one",
            ),
            (
                "Logout and idle time end the session on the server",
                A + "test_logout_and_idle_time_end_the_session_on_the_server",
            ),
            (
                "Remember-me survives a browser restart and rotates",
                J + "test_remember_me_survives_a_browser_restart_and_rotates_its_token",
            ),
            ("A reset ends every other session", J + "test_password_reset_by_link_ends_every_other_session"),
            (
                "Failed logins bring a growing delay; the reset path is never blocked",
                A + "test_failed_logins_bring_a_growing_delay_but_never_block_the_reset_path",
            ),
            (
                "Every POST of the gateway refuses a form without a valid CSRF token",
                "tests/security/test_attacks.py::test_every_post_route_refuses_a_form_without_a_valid_csrf_token",
            ),
            (
                "No open redirect after login",
                "tests/security/test_attacks.py::test_login_never_redirects_to_another_site",
            ),
        ],
    ),
    (
        "Each resident sees only their own invoices",
        [
            (
                "Foreign and malformed invoice ids answer 404 on every page",
                "tests/invoice_pages/test_isolation.py::test_foreign_and_malformed_invoice_ids_answer_the_french_404_on_every_route",
            ),
            (
                "Foreign invoice ids answer 404 on every resident route of the invoices service",
                "tests/invoices/test_isolation.py::test_foreign_invoice_ids_answer_404_on_every_resident_route",
            ),
            (
                "One town's office key cannot read or change another town",
                "tests/invoices/test_isolation.py::test_one_towns_key_cannot_read_or_change_another_town",
            ),
            (
                "Another resident's invoice and PayFiP operation are not found",
                "tests/payment_pages/test_isolation.py::test_another_residents_invoice_and_payfip_operation_are_not_found",
            ),
            (
                "An address the office takes off a debtor no longer shows its invoices",
                "tests/invoices/test_resident.py::test_an_address_the_office_takes_off_a_debtor_no_longer_shows_its_invoices",
            ),
        ],
    ),
    (
        "Every resident can use the pages",
        [
            (
                "The manuals' journey in Chromium: axe finds nothing at 360 and 1280 px, no foreign origin",
                "tests/browser/test_resident_journey.py::test_resident_goes_through_the_manuals_in_chromium",
            ),
            (
                "Keyboard alone: skip link first, a visible focus at every key press",
                "tests/browser/test_keyboard_journey.py::"
                "test_resident_logs_in_opens_an_invoice_and_reaches_payment_with_the_keyboard_only",
            ),
            (
                "JavaScript off: login, invoices, grouped payment, règlements still work",
                "tests/browser/test_without_javascript.py::test_the_journey_works_with_javascript_turned_off",
            ),
            (
                "Every field labelled, every error tied to its field",
                "tests/gateway/test_page_structure.py::test_fields_are_labelled_and_errors_tied_to_their_fields",
            ),
            (
                "Security headers (CSP with nonces, frame-ancestors, nosniff, referrer, no-store) on every page",
                "tests/gateway/test_page_headers.py::test_every_get_page_has_the_security_headers",
            ),
            (
                "French 500 then 503 with a way back when a service fails, no trace shown",
                "tests/gateway/test_error_pages.py::test_a_service_answering_garbage_then_not_at_all_gives_french_500_then_503",
            ),
        ],
    ),
    (
        "Imports are all or nothing",
        [
            (
                "One bad row imports nothing and publishes nothing",
                I + "test_one_bad_row_among_good_ones_imports_nothing_and_publishes_nothing",
            ),
            (
                "Re-importing the same file changes nothing",
                I + "test_reimporting_the_same_file_changes_nothing_and_publishes_nothing",
            ),
            (
                "Any bytes give rows or a French refusal (hypothesis)",
                "tests/invoices/test_import_format.py::test_property_any_bytes_are_either_rows_or_a_french_refusal",
            ),
            (
                "100 000 invoices in one file",
                "tests/invoices/test_import_scale.py::test_hundred_thousand_invoices_import_in_one_file_and_reimport_unchanged",
            ),
        ],
    ),
    (
        "A payment is recorded only when PayFiP confirms it, and only once",
        [
            (
                "A resident pays one invoice; the portal confirms it once",
                P + "test_resident_pays_one_invoice_on_payfip_and_the_portal_confirms_it_once",
            ),
            ("Duplicate notifications settle once", S + "test_duplicate_notifications_settle_once"),
            (
                "A missing notification is made up for by the reconciler",
                S + "test_a_missing_notification_is_made_up_for_by_the_reconciler",
            ),
            (
                "Notifications, returns and reconcilers racing make one transition and one event",
                S + "test_notifications_returns_and_reconcilers_racing_make_one_transition_and_one_event",
            ),
            (
                "A result that differs from the attempt is flagged, not a payment",
                S + "test_a_result_that_differs_from_the_attempt_is_flagged_and_is_not_a_payment",
            ),
            (
                "Forged notifications change nothing",
                S + "test_forged_and_garbage_notifications_change_nothing_and_are_answered_200_empty",
            ),
            (
                "A second payment while the first may succeed is refused with why and until when",
                P + "test_a_second_payment_while_the_first_may_succeed_is_refused_with_why_and_until_when",
            ),
            (
                "PayFiP failing at the start: a French message, nothing locked",
                P + "test_payfip_failing_at_the_start_gives_a_french_message_and_locks_nothing",
            ),
            (
                "Any PayFiP reply gives a result or a clear error (hypothesis)",
                "tests/payments/test_payfip_messages.py",
            ),
        ],
    ),
    (
        "E-mails leave, once",
        [
            (
                "Temporary SMTP failures are retried, then one e-mail",
                "tests/notifier/test_delivery.py::test_temporary_smtp_failures_are_retried_then_the_email_is_sent_once",
            ),
            (
                "A redelivered event gives one e-mail",
                "tests/notifier/test_delivery.py::test_a_redelivered_event_gives_one_email",
            ),
            (
                "No header can be injected",
                "tests/notifier/test_mime.py::test_a_line_break_in_a_header_value_is_refused",
            ),
        ],
    ),
    (
        "Every service keeps its contract",
        [
            (
                "Schemathesis: no 5xx, answers as documented, on every service",
                "tests/security/test_api_fuzzing.py::test_no_input_makes_a_service_fail_or_answer_outside_its_description",
            ),
            ("docker-compose agrees with the settings", "tests/operations/test_compose.py"),
            ("Kubernetes manifests valid against the schemas", "tests/operations/test_kubernetes.py"),
        ],
    ),
]


def _junit() -> dict[str, tuple[str, float]]:
    """Test id → (outcome, seconds) from the last run."""
    path = ARTIFACTS / "junit.xml"
    if not path.exists():
        return {}
    results: dict[str, tuple[str, float]] = {}
    for case in ElementTree.parse(path).iter("testcase"):  # noqa: S314
        module = case.get("classname", "").replace(".", "/") + ".py"
        node = f"{module}::{case.get('name', '')}"
        outcome = (
            "failed"
            if case.find("failure") is not None or case.find("error") is not None
            else ("skipped" if case.find("skipped") is not None else "passed")
        )
        results[node] = (outcome, float(case.get("time", 0)))
    return results


def _status(target: str, runs: dict[str, tuple[str, float]]) -> str:
    matched = [
        v
        for k, v in runs.items()
        if k == target or k.startswith(target + "[") or ("::" not in target and k.startswith(target + "::"))
    ]
    if not matched:
        return "not run"
    outcomes = {o for o, _ in matched}
    seconds = sum(t for _, t in matched)
    label = (
        "passed"
        if outcomes == {"passed"}
        else "**failed**"
        if "failed" in outcomes
        else ", ".join(sorted(outcomes))
    )
    count = f"{len(matched)} cases, " if len(matched) > 1 else ""
    return f"{label} ({count}{seconds:.1f} s)"


def _figures() -> list[str]:
    lines: list[str] = []
    chaos = ARTIFACTS / "chaos" / "report.json"
    if chaos.exists():
        report: dict[str, Any] = json.loads(chaos.read_text())
        lines += ["## The chaos suite's last run", "", "| what | count |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in {**report["flow"], **report["counts"]}.items()]
        lines += ["", "| recovery | seconds |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in report["recovery seconds"].items()]
        lines.append("")
    results = sorted((ROOT / "bench" / "results").glob("*/report.md"))
    if results:
        lines += ["## The last benchmark run", "", *results[-1].read_text().splitlines()[4:], ""]
    return lines


def write() -> Path:
    runs = _junit()
    lines = [
        "# Guarantees, the tests that prove them, their last figures",
        "",
        f"Generated by `python -m tools.guarantees` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from the last"
        " `scripts/test` run (test-artifacts/junit.xml), the chaos report and the newest benchmark report.",
        "",
    ]
    for title, items in GUARANTEES:
        lines += [f"## {title}", "", "| guarantee | test | last run |", "| --- | --- | --- |"]
        lines += [f"| {what} | `{test}` | {_status(test, runs)} |" for what, test in items]
        lines.append("")
    lines += _figures()
    OUT.write_text("\n".join(lines) + "\n")
    return OUT


if __name__ == "__main__":
    print(write())
