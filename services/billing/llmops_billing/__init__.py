"""Billing: a price catalogue with effective dates and tenant overrides, the exact-decimal cost of each
interaction, and (next) the usage ledger, rollups, budgets and the billing API. See docs/billing.md."""
