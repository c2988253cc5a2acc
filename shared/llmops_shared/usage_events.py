"""The priced-usage message: what billing publishes on `billing.usage` for each usage-ledger row it inserted.

Written to billing's outbox in the ledger's transaction, once per row actually inserted (a redelivered
event inserts nothing and publishes nothing), and sent after the commit (or, after a crash, by the
outbox's relay), so a consumer learns an interaction's cost without pricing it again. Delivery is at
least once (a crash after the send and before the outbox's delete, or a retried send, repeats a
message); a consumer that must count each event once keys on `(tenant_id, event_id)` (the monitors
worker does). No text: ids, token counts and money only. Key on Kafka: `tenant_id/app_id`. `cost_total`
is an exact decimal string in USD, None when the row is unpriced.
"""

from __future__ import annotations

import uuid

from pydantic import AwareDatetime, BaseModel, ConfigDict


class UsageMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant_id: str
    app_id: str
    event_id: uuid.UUID
    occurred_at: AwareDatetime
    environment: str
    provider: str = ""
    model: str = ""
    prompt_name: str = ""
    prompt_version: str = ""
    prompt_variant: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_total: str | None = None
    unpriced: bool = False

    @property
    def key(self) -> bytes:
        return f"{self.tenant_id}/{self.app_id}".encode()

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()
