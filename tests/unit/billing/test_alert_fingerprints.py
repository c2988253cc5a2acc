"""Billing alert fingerprints keep tenants and apps apart whatever slashes their ids hold."""

from __future__ import annotations

from llmops_billing.alerts import fingerprint


def test_slashes_in_ids_cannot_make_two_tenants_share_a_fingerprint() -> None:
    assert fingerprint("budget", "acme", "eu/bot") != fingerprint("budget", "acme/eu", "bot")
    assert fingerprint("budget", "acme", "bot") == "billing/budget/acme/bot"
