"""Whole-text passes of the PII rules, in one process, interleaved: each search `guard17` replaced (the `regex`
patterns, still in their modules) against what replaced it (about a second).

    .venv/bin/python bench/guardrails_passes.py [--workload names|mix] [--rounds 9]

Over the distinct texts of `bench/guardrails_cpu.py`'s 300 events (`names`: the distinct name-dense ones; `mix`: the
pipeline bench's), µs of CPU per event (`time.thread_time` around each pass over all texts), the median of
`--rounds` interleaved rounds with their range. `classes.plain(text)` is made once per text outside the timing for
the passes that read it (the gazetteer and the tagger make it for every text anyway); its own cost is the last line.
Needs this branch's modules (`people.sentence_names`, `people.name_runs`, `cues._STARTS_AFTER`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import guardrails_cpu  # noqa: E402
import guardrails_pipeline  # noqa: E402

from llmops_guardrails.detectors import keys  # noqa: E402
from llmops_guardrails.detectors.pii import classes, cues, people  # noqa: E402
from llmops_guardrails.engine import segments_of  # noqa: E402
from llmops_shared.contract import Interaction  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", choices=("names", "mix"), default="names")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    n_events = 300
    raw = guardrails_cpu.distinct_events(n_events) if args.workload == "names" else guardrails_pipeline.make_events(
        n_events)
    events = [Interaction.model_validate(e) for e in raw]
    texts = list(dict.fromkeys(s.text for e in events
                               for s in segments_of("input", e.input) + segments_of("output", e.output)))
    made = {t: classes.plain(t) for t in texts}
    people.plain = made.__getitem__  # type: ignore[assignment]  # (shared: made once per text)
    passes: dict[str, tuple[Callable[[str], Any], Callable[[str], Any]]] = {
        "cue keys (cues.starts)": (lambda t: list(cues._STARTS.finditer(keys.fold(t))),
                                   lambda t: list(cues._STARTS_AFTER.finditer(" " + keys.fold(t)))),
        "sentence names": (lambda t: list(people._SUBJECT_OR_VOCATIVE.finditer(t)), people.sentence_names),
        "name runs": (lambda t: list(people._NAME_RUN.finditer(t)), lambda t: list(people.name_runs(t))),
        "capitalised words": (lambda t: [(m, " " in m.group()) for m in people._CAPITALISED_WORDS.finditer(t)],
                              people.capitalised_words),
        "class stand-ins (classes.plain)": (lambda t: t if t.isascii() else t.translate(classes._CLASSES),
                                            classes.plain.__wrapped__),  # type: ignore[attr-defined]
    }
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in passes}
    for _ in range(args.rounds):
        for name, fns in passes.items():
            for side, fn in enumerate(fns):
                t0 = time.thread_time()
                for t in texts:
                    fn(t)
                times[name][side].append((time.thread_time() - t0) / n_events * 1e6)
    print(f"{args.workload}: {len(texts)} distinct texts of {n_events} events, {sum(t.isascii() for t in texts)} ASCII;"
          f" µs per event, median of {args.rounds} interleaved rounds [range]: before -> this branch")
    total = [0.0, 0.0]
    for name, (before, after) in times.items():
        b, a = statistics.median(before), statistics.median(after)
        total[0] += b
        total[1] += a
        print(f"{name:34} {b:6.1f} [{min(before):.1f}-{max(before):.1f}] -> "
              f"{a:6.1f} [{min(after):.1f}-{max(after):.1f}]")
    print(f"{'all':34} {total[0]:6.1f} -> {total[1]:6.1f}")


if __name__ == "__main__":
    main()
