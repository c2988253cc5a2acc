"""The billing API's own dependencies, beside the shared ones (`llmops_shared.deps`: `BillingReader`,
`Admin`, `Pool`, `Conn`, `Now`): what `api.create_app` put on `app.state`.

    async def get_quote(*, principal: BillingReader, catalogue: Catalogue, now: Now, model: str) -> Quote: ...
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from llmops_billing.catalogue import CatalogueCache
from llmops_billing.prices import PriceCatalogue
from llmops_billing.settings import BillingSettings
from llmops_shared import problems


async def _settings(request: Request) -> BillingSettings:
    settings: BillingSettings = request.app.state.settings
    return settings



async def _catalogues(request: Request) -> CatalogueCache:
    catalogues: CatalogueCache = request.app.state.catalogues
    return catalogues


async def _catalogue(request: Request) -> PriceCatalogue:
    catalogues: CatalogueCache = request.app.state.catalogues
    return await catalogues.get(request.app.state.pool)


Settings = Annotated[BillingSettings, Depends(_settings)]
Catalogues = Annotated[CatalogueCache, Depends(_catalogues)]
"""The process's catalogue cache (to reload after a change)."""
Catalogue = Annotated[PriceCatalogue, Depends(_catalogue)]
"""The catalogue, reloaded first when stale."""


def problems_for(status: int, description: str) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` entry for one more error status (beyond `problems.ERROR_RESPONSES`)."""
    return {status: {"model": problems.Problem, "description": description, "content": {problems.MEDIA_TYPE: {}}}}
