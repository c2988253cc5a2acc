"""A span's prompt and completion in the contract's shape, from whichever convention the instrumentation used.

Each side (input, output) takes the first of these sources that has it:

1. GenAI semantic conventions, current: `gen_ai.input.messages` / `gen_ai.output.messages` (JSON strings or
   structured values, `{role, parts: [...]}`), with `gen_ai.system_instructions` as a leading system message.
2. GenAI, v1.27 to v1.36: span events `gen_ai.system.message`, `gen_ai.user.message`,
   `gen_ai.assistant.message`, `gen_ai.tool.message` (input) and `gen_ai.choice` (output).
3. GenAI, v1.26 and before: events `gen_ai.content.prompt` / `gen_ai.content.completion` carrying
   `gen_ai.prompt` / `gen_ai.completion` (JSON lists of messages), or those attributes on the span.
4. Flattened messages: OpenInference `llm.input_messages.N.message.*` / `llm.output_messages.N.message.*`,
   and the older GenAI form `gen_ai.prompt.N.*` / `gen_ai.completion.N.*`.
5. Plain payloads: OpenInference `input.value` / `output.value`; a tool call's `gen_ai.tool.call.arguments`
   / `gen_ai.tool.call.result`; a retriever's documents; an embedding's texts.

What comes back is plain data (`list[dict]` in `ChatMessage`'s shape, or text) that `Interaction`
validates. Roles outside the contract's (`model`, `human`, ...) are mapped where the meaning is clear and
the message dropped otherwise. Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from llmops_ingest.otlp.attributes import as_text, clean, maybe_json
from llmops_shared.contract import MAX_MESSAGES, MAX_TEXT_CHARS, MAX_TOOL_CALLS

Message = dict[str, Any]
Side = list[Message] | str | None

CONTENT_PREFIXES = (
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.prompt",
    "gen_ai.completion", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "llm.input_messages",
    "llm.output_messages", "input.value", "output.value", "retrieval.documents", "embedding.embeddings",
    "reranker.input_documents", "reranker.output_documents", "llm.prompt_template.variables", "tool.parameters",
)
"""Attributes that carry prompt or completion text: mapped to `input`/`output` (where guardrails scan and
redact them) or dropped, never copied into `metadata`."""

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_ROLE_ALIASES = {"human": "user", "ai": "assistant", "model": "assistant", "bot": "assistant", "ipython": "tool"}
_INPUT_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                 "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
_SHORT = 256


def conversation(attrs: Mapping[str, Any], events: Sequence[tuple[str, dict[str, Any]]]) -> tuple[Side, Side]:
    """(input, output) of a span from its attributes and its events (name, attributes)."""
    return _first(_input_sources(attrs, events)), _first(_output_sources(attrs, events))


def _first(sources: Sequence[Any]) -> Side:
    for source in sources:
        side = source()
        if side:
            return side[:MAX_MESSAGES] if isinstance(side, list) else side
    return None


def _input_sources(attrs: Mapping[str, Any], events: Sequence[tuple[str, dict[str, Any]]]) -> list[Any]:
    return [
        lambda: _with_instructions(attrs.get("gen_ai.system_instructions"),
                                   _genai_messages(attrs.get("gen_ai.input.messages"))),
        lambda: [m for name, ev in events if name in _INPUT_EVENTS for m in _event_message(_INPUT_EVENTS[name], ev)],
        lambda: _openai_messages(_event_attr(events, "gen_ai.content.prompt", "gen_ai.prompt")
                                 or attrs.get("gen_ai.prompt")),
        lambda: _flattened(attrs, "llm.input_messages"),
        lambda: _flattened(attrs, "gen_ai.prompt"),
        lambda: as_text(attrs.get("input.value"), MAX_TEXT_CHARS),
        lambda: as_text(attrs.get("gen_ai.tool.call.arguments"), MAX_TEXT_CHARS),
        lambda: _joined(attrs, "embedding.embeddings", "embedding.text"),
    ]


def _output_sources(attrs: Mapping[str, Any], events: Sequence[tuple[str, dict[str, Any]]]) -> list[Any]:
    return [
        lambda: _genai_messages(attrs.get("gen_ai.output.messages")),
        lambda: [m for name, ev in events if name == "gen_ai.choice" for m in _choice(ev)],
        lambda: _openai_messages(_event_attr(events, "gen_ai.content.completion", "gen_ai.completion")
                                 or attrs.get("gen_ai.completion")),
        lambda: _flattened(attrs, "llm.output_messages"),
        lambda: _flattened(attrs, "gen_ai.completion"),
        lambda: as_text(attrs.get("output.value"), MAX_TEXT_CHARS),
        lambda: as_text(attrs.get("gen_ai.tool.call.result"), MAX_TEXT_CHARS),
        lambda: _joined(attrs, "retrieval.documents", "document.content"),
    ]


# -- GenAI, current: {role, parts: [{type: text|tool_call|tool_call_response|reasoning|uri|blob|file, ...}]} ---


def _genai_messages(value: Any) -> list[Message]:
    value = maybe_json(value)
    if not isinstance(value, list):
        return []
    out: list[Message] = []
    for item in value:
        if isinstance(item, dict):
            out.extend(_genai_message(item))
    return out


def _with_instructions(instructions: Any, messages: list[Message]) -> list[Message]:
    parts = maybe_json(instructions)
    if isinstance(parts, str):
        parts = [{"type": "text", "content": parts}]
    if isinstance(parts, list) and (system := _genai_message({"role": "system", "parts": parts})):
        return [*system, *messages]
    return messages


def _genai_message(item: dict[str, Any]) -> list[Message]:
    role = _role(item.get("role"))
    parts = item.get("parts")
    if role is None:
        return []
    if not isinstance(parts, list):  # some producers send {role, content} here too
        return _openai_messages([item])
    content: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    responses: list[Message] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "tool_call" and (call := _tool_call(part.get("id"), part.get("name"), part.get("arguments"))):
            tool_calls.append(call)
        elif kind == "tool_call_response":
            responses.append(_message("tool", as_text(part.get("response", part.get("result")), MAX_TEXT_CHARS),
                                      tool_call_id=part.get("id")))
        elif kind in ("text", "reasoning"):
            if text := as_text(part.get("content", part.get("text")), MAX_TEXT_CHARS):
                content.append({"type": kind, "text": text})
        elif isinstance(kind, str) and kind:
            url = part.get("uri", part.get("url"))
            content.append({"type": clean(kind, _SHORT),
                            **({"url": clean(url, 4096)} if isinstance(url, str) and url else {})})
    messages = [m for m in responses if m]
    if content or tool_calls or not messages:
        messages.insert(0, _message(role, _content(content), tool_calls=tool_calls, name=item.get("name")))
    return [m for m in messages if m]


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]] | None:
    if not parts:
        return None
    if all(p["type"] == "text" for p in parts):
        return clean("\n".join(p.get("text") or "" for p in parts), MAX_TEXT_CHARS) or None
    return parts


# -- OpenAI-shaped messages: {role, content, tool_calls: [{id, function: {name, arguments}}], tool_call_id} ---


def _openai_messages(value: Any) -> list[Message]:
    value = maybe_json(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return []
    return [m for item in value if isinstance(item, dict) for m in _event_message(item.get("role"), item)]


def _event_message(role: Any, attrs: Mapping[str, Any]) -> list[Message]:
    """A message from an event's attributes (or an OpenAI-shaped dict): `content`, `tool_calls`, `id`."""
    body = maybe_json(attrs.get("gen_ai.event.content"))
    if isinstance(body, dict):
        attrs = {**attrs, **body}
    role = attrs.get("role") or role
    content = maybe_json(attrs.get("content"))
    if isinstance(content, list):  # OpenAI's content parts, [{type: text, text}], or GenAI parts
        parts = _genai_message({"role": role, "parts": [
            {**p, "content": p.get("text", p.get("content"))} if isinstance(p, dict) else p for p in content]})
        return parts
    calls = [c for raw in _list(maybe_json(attrs.get("tool_calls")))[:MAX_TOOL_CALLS]
             if isinstance(raw, dict) and (c := _openai_tool_call(raw))]
    message = _message(_role(role) or "", as_text(content, MAX_TEXT_CHARS), tool_calls=calls,
                       tool_call_id=attrs.get("tool_call_id", attrs.get("id") if _role(role) == "tool" else None),
                       name=attrs.get("name"))
    return [message] if message else []


def _choice(attrs: Mapping[str, Any]) -> list[Message]:
    body = maybe_json(attrs.get("gen_ai.event.content"))
    message = maybe_json(attrs.get("message", body.get("message") if isinstance(body, dict) else None))
    if isinstance(message, dict):
        return _event_message(message.get("role") or "assistant", message)
    return _event_message("assistant", attrs)


def _event_attr(events: Sequence[tuple[str, dict[str, Any]]], event: str, attribute: str) -> Any:
    for name, attrs in events:
        if name == event and attribute in attrs:
            return attrs[attribute]
    return None


# -- flattened: llm.input_messages.0.message.role, gen_ai.prompt.0.content, ... --------------------------

_INDEXED = re.compile(r"^(\d+)\.(.+)$")
_NOISE = re.compile(r"(?<![^.])(?:message|tool_call|function|message_content|image)\.")


def _indexed(attrs: Mapping[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """`{prefix}.N.rest` attributes grouped by N, each rest without OpenInference's wrapper segments."""
    grouped: dict[int, dict[str, Any]] = {}
    start = prefix + "."
    for key, value in attrs.items():
        if key.startswith(start) and (match := _INDEXED.match(key[len(start):])):
            rest = _NOISE.sub("", match.group(2))
            grouped.setdefault(int(match.group(1)), {})[rest] = value
    return dict(sorted(grouped.items()))


def _flattened(attrs: Mapping[str, Any], prefix: str) -> list[Message]:
    out = []
    for fields in _indexed(attrs, prefix).values():
        calls = [c for call in _indexed(fields, "tool_calls").values()
                 if (c := _tool_call(call.get("id"), call.get("name"), call.get("arguments")))]
        parts = [{"type": p.get("type") or "text", "text": p.get("text"), "url": p.get("url")}
                 for p in _indexed(fields, "contents").values()]
        content: Any = as_text(fields.get("content"), MAX_TEXT_CHARS)
        if content is None and parts:
            content = _content([{"type": clean(str(p["type"]), _SHORT),
                                 **({"text": clean(p["text"], MAX_TEXT_CHARS)} if isinstance(p["text"], str) else {}),
                                 **({"url": clean(p["url"], 4096)} if isinstance(p["url"], str) else {})}
                                for p in parts])
        message = _message(_role(fields.get("role")) or ("assistant" if "completion" in prefix or "output" in prefix
                                                         else ""),
                           content, tool_calls=calls, tool_call_id=fields.get("tool_call_id"), name=fields.get("name"))
        if message:
            out.append(message)
    return out


def _joined(attrs: Mapping[str, Any], prefix: str, field: str) -> str | None:
    texts = [fields[field] for fields in _indexed(attrs, prefix).values() if isinstance(fields.get(field), str)]
    return clean("\n\n".join(texts), MAX_TEXT_CHARS) or None


# -- the pieces --------------------------------------------------------------------------------------


def _role(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    role = _ROLE_ALIASES.get(value.strip().lower(), value.strip().lower())
    return role if role in ROLES else None


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any] | None:
    if not isinstance(name, str) or not name.strip():
        return None
    call: dict[str, Any] = {"name": clean(name, _SHORT), "arguments": as_text(arguments, MAX_TEXT_CHARS) or ""}
    if isinstance(call_id, str) and call_id:
        call["id"] = clean(call_id, _SHORT)
    return call


def _openai_tool_call(raw: dict[str, Any]) -> dict[str, Any] | None:
    function = raw["function"] if isinstance(raw.get("function"), dict) else raw
    return _tool_call(raw.get("id"), function.get("name"), function.get("arguments"))


def _message(role: str, content: Any, *, tool_calls: list[dict[str, Any]] | None = None,
             tool_call_id: Any = None, name: Any = None) -> Message:
    """A message in `ChatMessage`'s shape, or {} when it has no known role or nothing in it."""
    if role not in ROLES or (content is None and not tool_calls):
        return {}
    message: Message = {"role": role, "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls[:MAX_TOOL_CALLS]
    if isinstance(tool_call_id, str) and tool_call_id:
        message["tool_call_id"] = clean(tool_call_id, _SHORT)
    if isinstance(name, str) and name:
        message["name"] = clean(name, _SHORT)
    return message


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
