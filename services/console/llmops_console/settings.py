"""Configuration of the console: `LLMOPS_CONSOLE_*` variables (docs/configuration.md)."""

from __future__ import annotations

from pydantic import Field

from llmops_shared.settings import ApiSettings, service_config


class ConsoleSettings(ApiSettings):
    """One frozen settings object for the console, built once at start."""

    model_config = service_config("console")

    port: int = 8090
    """The console's port."""
    session_ttl_s: int = Field(8 * 3600, ge=60)
    """How long a sign-in lasts without use (the session is in Redis; each page view renews it)."""
    secure_cookies: bool = False
    """Mark the session cookie `Secure` (sent over HTTPS only). Set it wherever the console is behind TLS;
    off by default so that the local stack's plain-HTTP console can sign in."""
    review_lock_minutes: int = Field(30, ge=1)
    """How long a review item taken in the console stays locked for its reviewer."""
