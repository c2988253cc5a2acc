"""Watching a provider's stream in place: every item passes through unchanged while the SDK notes it.

The OpenAI and Anthropic wrappers replace a stream's iterator with one of these generators. `note` sees each
item before the app does; `failed` sees an exception of the stream (which then propagates unchanged);
`ended` runs once when the stream stops for any reason, told whether it ran to its end (an app that stops
reading early, or a stream that raised, is not complete). None of the callbacks may raise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

__all__ = ["watched", "watched_async"]


def watched(inner: Iterator[Any], note: Callable[[Any], None], failed: Callable[[BaseException], None],
            ended: Callable[[bool], None]) -> Iterator[Any]:
    complete = False
    try:
        for item in inner:
            note(item)
            yield item
        complete = True
    except Exception as exc:
        failed(exc)
        raise
    finally:
        ended(complete)


async def watched_async(inner: AsyncIterator[Any], note: Callable[[Any], None],
                        failed: Callable[[BaseException], None], ended: Callable[[bool], None]) -> AsyncIterator[Any]:
    complete = False
    try:
        async for item in inner:
            note(item)
            yield item
        complete = True
    except Exception as exc:
        failed(exc)
        raise
    finally:
        ended(complete)
