"""The console's browser fixture (`browser_support.browser`)."""

from tests.integration.console.browser_support import browser

__all__ = ["browser"]
