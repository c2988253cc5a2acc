"""Same findings before and after a speed-up: the guardrails engine of this tree against another commit's, on
corpora, compared finding by finding (no stack needed; about a minute).

    .venv/bin/python bench/guardrails_same_findings.py --baseline-src DIR [--name-model tagger]

`DIR` holds another commit's `llmops_guardrails` package (e.g. `git worktree add /tmp/base <commit>`, then
`/tmp/base/services/guardrails`). Each side runs in a child process with its package first on `PYTHONPATH`, the
default policy, one finding-hash salt and the same name finder (settings from the environment, so
`LLMOPS_GUARDRAILS_NAME_MODEL` too; `--name-model` sets it for both sides), and writes what it decided for every
item; the two are compared whole: every finding (detector, kind, place, span, score, value hash, signals), every
triggered rule and the redacted content. Items:

1. every text of the PII set (`../shared/data/pii`, 1,500) and of the injection set and its prose
   (`services/guardrails/llmops_guardrails/data/`), each checked alone (`PolicyEngine.check_text`, as the inline
   API does);
2. the pipeline bench's events, the CPU bench's distinct name-dense ~1 KB events and the same with every PII value
   new (`guardrails_cpu.fresh_events`) (`scan_many`, the stream worker's call, in batches of 500, cold cache),
   generated once here so both sides scan the same events.

Exit status 1 when anything differs.

Both sides read the settings from the environment. The default name model changed in issue 17 (`pii8`: `tagger`,
retrained, instead of `spacy`), so across that change pin it: `LLMOPS_GUARDRAILS_NAME_MODEL=spacy` compares the
NER path (unchanged by `pii8`: 0 of 12,630 items differ against 64eb1d1), `=tagger` a speed-up of the tagger.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PII = ROOT.parent / "shared" / "data" / "pii" / "synth_dataset_v2.json"
INJECTION = [ROOT / "services/guardrails/llmops_guardrails/data" / n
             for n in ("injection_prompts.jsonl", "injection_prose.jsonl")]


def corpus(n_events: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "bench"))
    import guardrails_cpu
    import guardrails_pipeline

    from llmops_guardrails.pii_eval import load_samples

    random.seed(17)
    texts = [s.text for s in load_samples(PII)]
    for path in INJECTION:
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    events = (guardrails_pipeline.make_events(n_events) + guardrails_cpu.distinct_events(n_events)
              + guardrails_cpu.fresh_events(n_events))
    return {"texts": texts, "events": events}


def decide(items_path: Path, out_path: Path) -> None:
    """In a child process: this side's decisions on every item, as JSON."""
    import logging

    import llmops_guardrails
    from llmops_guardrails.engine import PolicyEngine
    from llmops_guardrails.policy import load_policy
    from llmops_guardrails.settings import GuardrailsSettings
    from llmops_shared.contract import Interaction

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    items = json.loads(items_path.read_text())
    engine = PolicyEngine(GuardrailsSettings(finding_hash_salt="same-findings"))  # type: ignore[arg-type]
    policy = load_policy()
    out: list[Any] = []
    for text in items["texts"]:
        out.append(engine.check_text(text, policy).model_dump(mode="json"))
    events = [Interaction.model_validate(e) for e in items["events"]]
    engine._cache.clear()
    for i in range(0, len(events), 500):
        out += [s.model_dump(mode="json") for s in engine.scan_many(events[i:i + 500], policy)]
    out_path.write_text(json.dumps({"package": str(Path(llmops_guardrails.__file__).parent),
                                    "name_model": engine.settings.name_model, "decisions": out}))


def run_side(src: str | None, items: Path, out: Path, name_model: str = "") -> dict[str, Any]:
    env = dict(os.environ)
    if name_model:
        env["LLMOPS_GUARDRAILS_NAME_MODEL"] = name_model
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    subprocess.run([sys.executable, __file__, "--decide", str(items), str(out)], env=env, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline-src", default="")
    parser.add_argument("--events", type=int, default=1000, help="of each kind")
    parser.add_argument("--name-model", default="", help="LLMOPS_GUARDRAILS_NAME_MODEL for both sides "
                        "(default: the environment's, else the settings' default)")
    parser.add_argument("--decide", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.decide:
        decide(Path(args.decide[0]), Path(args.decide[1]))
        return
    if not args.baseline_src:
        parser.error("--baseline-src is required")
    tmp = Path(tempfile.mkdtemp(prefix="gr-same-"))
    items = tmp / "items.json"
    data = corpus(args.events)
    items.write_text(json.dumps(data))
    base = run_side(args.baseline_src, items, tmp / "baseline.json", args.name_model)
    ours = run_side(None, items, tmp / "ours.json", args.name_model)
    print(f"baseline: {base['package']} (names: {base['name_model']})\n"
          f"this tree: {ours['package']} (names: {ours['name_model']})")
    if base["name_model"] != ours["name_model"]:
        sys.exit("the two sides used different name finders")
    labels = ["text"] * len(data["texts"]) + ["event"] * len(data["events"])
    differ = [i for i, (a, b) in enumerate(zip(base["decisions"], ours["decisions"], strict=True)) if a != b]
    findings = sum(len(d["findings"]) for d in ours["decisions"])
    by_detector: dict[str, int] = {}
    for d in ours["decisions"]:
        for f in d["findings"]:
            by_detector[f["detector"]] = by_detector.get(f["detector"], 0) + 1
    print(f"{len(data['texts'])} texts and {len(data['events'])} events: {findings} findings {by_detector}; "
          f"{len(differ)} items decided differently")
    for i in differ[:5]:
        print(f"  {labels[i]} {i}: baseline {json.dumps(base['decisions'][i])[:300]}\n"
              f"           this tree {json.dumps(ours['decisions'][i])[:300]}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
