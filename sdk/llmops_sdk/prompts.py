"""Managed prompts: `get_prompt()` from the prompts API, cached in the process, and `Prompt.compile()`.

    llmops_sdk.configure_prompts(endpoint="http://127.0.0.1:8085", api_key=KEY)
    prompt = llmops_sdk.get_prompt("support-answer", fallback="Answer briefly: {{ question }}")
    messages = [{"role": "user", "content": prompt.compile(question=q)}]

The cache (one per `PromptClient`) keeps every answer it got. A fresh one (younger than `ttl_s`) is
served as it is; a stale one is served too, at once, while one background thread per prompt fetches it
again (stale-while-revalidate): once a prompt was fetched, `get_prompt()` never waits on the network, and
an API that is down only means the last answer is served for longer. The first call for a prompt waits
for the API (at most `timeout_s`); if that fails, the app's `fallback` is served and the fetch is retried
in the background after `retry_s`, so even a cold cache blocks once per `retry_s` at most. `get_prompt()`
raises only when nothing was ever fetched and the app gave no fallback (`PromptUnavailable`).

Experiments: when the label has a running experiment, the API's answer carries its variants and the
SDK assigns the unit itself (`unit_id=`, or the trace context's user, session or trace id, as the
experiment says), with the same hash as the API (`bucket()`): one user gets one variant in every process.

Events recorded while a prompt is in use carry its reference (`{name, version, variant}`): `compile()`
makes it the current context's prompt until the enclosing `trace()` ends (or for good, outside any trace),
`with prompt.use():` for a block only (`llmops_sdk.context.PROMPT`).

The template syntax is the API's (`llmops_prompts.template`): `{{ name }}` placeholders and nothing else;
a missing variable raises `MissingVariables` naming it. Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from llmops_sdk.context import CURRENT, PROMPT

log = logging.getLogger("llmops_sdk")

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
HOLDOUT = "holdout"
Template = Union[str, list]  # noqa: UP007 (evaluated at import, on Python 3.9 too)


class MissingVariables(ValueError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"missing variable{'s' if len(names) > 1 else ''}: {', '.join(names)}")
        self.names = names


class PromptUnavailable(RuntimeError):
    """Nothing was fetched for this prompt and the app gave no fallback."""


def variables(template: Template) -> list[str]:
    texts = [template] if isinstance(template, str) else [m.get("content") for m in template]
    seen: dict[str, None] = {}
    for text in texts:
        if isinstance(text, str):
            for match in PLACEHOLDER.finditer(text):
                seen.setdefault(match.group(1), None)
    return list(seen)


def render(template: Template, values: Mapping[str, Any]) -> Template:
    """Every placeholder replaced; `MissingVariables` names every one without a value."""
    missing = [name for name in variables(template) if name not in values]
    if missing:
        raise MissingVariables(missing)

    def fill(text: str) -> str:
        return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)

    if isinstance(template, str):
        return fill(template)
    return [{**m, "content": fill(m["content"])} if isinstance(m.get("content"), str) else dict(m)
            for m in template]


def bucket(experiment_id: str, unit_id: str) -> float:
    """The unit's point in [0, 1) for this experiment: the API's `llmops_prompts.assignment.bucket`."""
    digest = hashlib.sha256(json.dumps([experiment_id, unit_id]).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(experiment_id: str, unit_id: str, weights: list[tuple[str, float]], holdout: float = 0.0) -> str:
    point = bucket(experiment_id, unit_id)
    if point < holdout:
        return HOLDOUT
    total = sum(weight for _, weight in weights)
    scaled = (point - holdout) / (1 - holdout) * total
    for name, weight in weights:
        if scaled < weight:
            return name
        scaled -= weight
    return weights[-1][0]


@dataclass(frozen=True)
class Prompt:
    """One version of a managed prompt (or the app's fallback: `is_fallback`, no version)."""

    name: str
    template: Template
    type: str = "text"
    version: int | None = None
    config: dict = field(default_factory=dict)
    labels: tuple = ()
    variant: str | None = None
    experiment_id: str | None = None
    is_fallback: bool = False

    @property
    def variables(self) -> list[str]:
        return variables(self.template)

    @property
    def reference(self) -> dict[str, str]:
        """What events recorded while it is in use carry as `prompt`."""
        ref = {"name": self.name}
        if self.version is not None:
            ref["version"] = str(self.version)
        if self.variant is not None:
            ref["variant"] = self.variant
        return ref

    def compile(self, **values: Any) -> Template:
        """The template filled in; makes this the current context's prompt for the events that follow."""
        rendered = render(self.template, values)
        PROMPT.set(self.reference)
        return rendered

    @contextlib.contextmanager
    def use(self) -> Iterator[Prompt]:
        """Events recorded inside the block carry this prompt's reference."""
        token = PROMPT.set(self.reference)
        try:
            yield self
        finally:
            with contextlib.suppress(ValueError):
                PROMPT.reset(token)


Fetch = Callable[[str, Mapping[str, str]], dict | None]
"""(prompt name, query) -> the API's answer, None for 404; raises when the API cannot answer."""


@dataclass
class _Entry:
    answer: dict | None  # None: not fetched yet
    served: Prompt | None = None  # the answer as a Prompt, when no experiment needs a unit to pick one
    fetched_at: float = 0.0
    failed_at: float | None = None
    refreshing: bool = False


class PromptClient:
    """`get_prompt()` with its cache. `fetch=` and `clock=` replace the HTTP call and the time (tests)."""

    def __init__(self, endpoint: str = "", api_key: str = "", *, ttl_s: float = 60.0, timeout_s: float = 2.0,
                 retry_s: float = 5.0, fetch: Fetch | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"the prompts endpoint must be an http:// or https:// URL, not {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self.api_key = api_key
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self._fetch = fetch or self._http_fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._refreshes: set[threading.Thread] = set()

    # -- the app's side --------------------------------------------------------------------------------

    def get_prompt(self, name: str, label: str = "production", *, version: int | None = None,
                   fallback: Template | None = None, type: str | None = None,
                   unit_id: str | None = None) -> Prompt:
        key = (name, f"version:{version}" if version is not None else f"label:{label}")
        now = self._clock()
        fast = self._entries.get(key)  # the warm path: no lock, no allocation
        if fast is not None and fast.served is not None and now - fast.fetched_at < self.ttl_s:
            return fast.served
        query = {"version": str(version)} if version is not None else {"label": label}
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(None)
            answer = entry.answer
            if answer is not None:
                if now - entry.fetched_at >= self.ttl_s:
                    self._refresh_in_background(key, name, query, entry, now)
                return self._served(answer, unit_id)
            cold_retry_due = entry.failed_at is None or now - entry.failed_at >= self.retry_s
            background = entry.failed_at is not None  # tried once in the app's thread already: never again
        if cold_retry_due and not background:
            self._refresh(key, name, query)  # the first call waits for the API, once
        elif cold_retry_due:
            with self._lock:
                self._refresh_in_background(key, name, query, entry, now)
        with self._lock:
            answer = entry.answer
        if answer is not None:
            return self._served(answer, unit_id)
        if fallback is None:
            raise PromptUnavailable(f"prompt {name!r} could not be fetched and no fallback was given")
        kind = type or ("text" if isinstance(fallback, str) else "chat")
        return Prompt(name=name, template=fallback, type=kind, is_fallback=True)

    # -- fetching --------------------------------------------------------------------------------------

    def _refresh_in_background(self, key: tuple[str, str], name: str, query: Mapping[str, str], entry: _Entry,
                               now: float) -> None:
        """Start one refresh of `key` unless one runs or one failed less than `retry_s` ago. Holds the lock."""
        if entry.refreshing or (entry.failed_at is not None and now - entry.failed_at < self.retry_s):
            return
        entry.refreshing = True
        thread = threading.Thread(target=self._refresh, args=(key, name, query), name="llmops-prompt-refresh",
                                  daemon=True)
        self._refreshes.add(thread)
        thread.start()

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait for the background refreshes in flight (tests, and an app that wants fresh prompts at start)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            running = list(self._refreshes)
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in running)

    def _refresh(self, key: tuple[str, str], name: str, query: Mapping[str, str]) -> None:
        try:
            answer = self._fetch(name, query)
        except Exception as exc:
            log.warning("llmops: could not fetch prompt %r (%s %s); serving what is cached or the fallback",
                        name, type(exc).__name__, getattr(exc, "code", ""))
            answer, failed = None, True
        else:
            failed = answer is None
        with self._lock:
            self._refreshes.discard(threading.current_thread())
            entry = self._entries[key]
            entry.refreshing = False
            if failed or answer is None:
                entry.failed_at = self._clock()
            else:
                entry.answer, entry.fetched_at, entry.failed_at = answer, self._clock(), None
                entry.served = None if answer.get("experiment") else _prompt(answer)

    def _http_fetch(self, name: str, query: Mapping[str, str]) -> dict | None:
        url = f"{self.endpoint}/v1/prompts/{urllib.parse.quote(name, safe='')}?{urllib.parse.urlencode(query)}"
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http or https: checked in __init__)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:  # noqa: S310 (checked in __init__)
                answer: dict = json.loads(resp.read())
                return answer
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                log.warning("llmops: prompt %r not found (%s)", name, dict(query))
                return None
            raise

    # -- serving ---------------------------------------------------------------------------------------

    def _served(self, answer: dict, unit_id: str | None) -> Prompt:
        experiment = answer.get("experiment")
        if experiment:
            unit = unit_id or _context_unit(experiment.get("unit", "user"))
            if unit is not None:
                weights = [(v["name"], float(v["weight"])) for v in experiment["variants"]]
                chosen = assign(experiment["id"], unit, weights, float(experiment.get("holdout", 0)))
                for variant in experiment["variants"]:
                    if variant["name"] == chosen:
                        return _prompt(variant["prompt"], variant=chosen, experiment_id=experiment["id"])
                return _prompt(answer, variant=HOLDOUT, experiment_id=experiment["id"])
        return _prompt(answer)


def _context_unit(unit: str) -> str | None:
    context = CURRENT.get()
    if context is None:
        return None
    return {"user": context.user_id, "session": context.session_id, "trace": context.trace_id}.get(unit)


def _prompt(answer: Mapping[str, Any], *, variant: str | None = None, experiment_id: str | None = None) -> Prompt:
    return Prompt(name=answer["name"], template=answer["template"], type=answer.get("type", "text"),
                  version=answer.get("version"), config=dict(answer.get("config") or {}),
                  labels=tuple(answer.get("labels") or ()), variant=variant, experiment_id=experiment_id)


_default: PromptClient | None = None


def configure_prompts(endpoint: str, api_key: str, **options: Any) -> PromptClient:
    """Set up the client `llmops_sdk.get_prompt()` uses (options are `PromptClient`'s)."""
    global _default  # noqa: PLW0603 (the module's default client, as client.py's recorder)
    _default = PromptClient(endpoint, api_key, **options)
    return _default


def get_prompt(name: str, label: str = "production", **options: Any) -> Prompt:
    """`PromptClient.get_prompt` on the client of `configure_prompts()`; without one, the fallback."""
    client = _default
    if client is None:
        fallback = options.get("fallback")
        if fallback is None:
            raise PromptUnavailable("configure_prompts() was not called and no fallback was given")
        return Prompt(name=name, template=fallback, type=options.get("type") or
                      ("text" if isinstance(fallback, str) else "chat"), is_fallback=True)
    return client.get_prompt(name, label, **options)
