"""Identical judgments come from Redis: same judge model, rubric version, messages and parameters.

The key is the SHA-256 of a canonical JSON of exactly those, under a per-tenant prefix (a tenant never
gets another tenant's judgment, nor rides on its spend). Only `ok` results are cached; a hit is returned
with `from_cache=True`, zero attempts and zero tokens: no HTTP call was made and nothing was spent.
Redis errors propagate: the worker retries the batch rather than judge without its cache and spend cap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError
from redis.asyncio import Redis

from llmops_evaluator.judge_client import JudgeResult
from llmops_evaluator.rubrics import Rubric

KEY_SCHEMA = 2  # bump to invalidate every cached judgment (e.g. when JudgeResult changes meaning)
# 2: reasoning scrubbed of personal data (`judge_client`); entries of 1 may quote the judged text raw.


def judgment_key(*, judge_model: str, rubric: Rubric, messages: list[dict[str, str]],
                 parameters: Mapping[str, Any]) -> str:
    """The hex SHA-256 naming one judgment; a new rubric version or any other input changes it."""
    payload = {
        "v": KEY_SCHEMA,
        "judge_model": judge_model,
        "rubric": rubric.ref,
        "messages": messages,
        "parameters": {k: v for k, v in sorted(parameters.items()) if v is not None},
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class JudgmentCache:
    def __init__(self, redis: Redis, *, ttl_s: int = 7 * 24 * 3600, prefix: str = "llmops:eval:judgment") -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._prefix = prefix

    def _key(self, tenant_id: str, digest: str) -> str:
        return f"{self._prefix}:{quote(tenant_id, safe='')}:{digest}"

    async def get(self, tenant_id: str, digest: str) -> JudgeResult | None:
        raw = await self._redis.get(self._key(tenant_id, digest))
        if raw is None:
            return None
        try:
            cached = JudgeResult.model_validate_json(raw)
        except ValidationError:
            return None  # written by an incompatible version: judge again, the put overwrites it
        return cached.model_copy(update={"from_cache": True, "attempts": 0, "input_tokens": 0,
                                         "output_tokens": 0, "latency_ms": 0.0})

    async def put_many(self, entries: list[tuple[str, str, JudgeResult]]) -> int:
        """`put` for (tenant, digest, result) entries in one round trip; returns how many were stored."""
        keep = [(t, d, r) for t, d, r in entries if r.ok and not r.from_cache]
        if not keep:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for tenant_id, digest, result in keep:
                pipe.set(self._key(tenant_id, digest), result.model_dump_json(), ex=self._ttl_s)
            await pipe.execute()
        return len(keep)

    async def put(self, tenant_id: str, digest: str, result: JudgeResult) -> bool:
        """Store an `ok` result (others are not cached: they should be tried again). True if stored."""
        if not result.ok or result.from_cache:
            return False
        await self._redis.set(self._key(tenant_id, digest), result.model_dump_json(), ex=self._ttl_s)
        return True
