"""The injection detector of whichever `llmops_guardrails` is first on the path, scored on the test split of a
labelled set given by path, so that two versions (their code and their shipped model) are compared on the same
rows in one session:

    PYTHONPATH=<a tree's services/guardrails>:... .venv/bin/python bench/injection_split.py \
        --rows services/guardrails/llmops_guardrails/data/injection_prompts.jsonl [--part-of OLD_ROWS.jsonl]

Prints the rules alone, the model alone and both (a finding when either scores >= 0.7, as with `model: true`):
precision, recall, false-positive rate and counts, on the whole test split and, with `--part-of`, on the test
rows whose text is also in that other file's test split (the rows an earlier version was measured on) and on the
others; then the long-prose check of `bench/injection_model.py --prose` (docs pages and their paragraphs).
`--recall-at-fp N [N ...]`: the recall of rules + model at the model threshold that allows at most N false
positives on the whole test split (how two versions compare at equal false positives: give each the other's
count). `--latency ROUNDS`: the model's thread CPU time per text (`InjectionModel.score`), per text the median of the
rounds, p50 and p99 over texts, on the file's prompts of <= 300 characters and on 200 texts of ~1.1 KB (a prompt
inside filler prose, built as `bench/injection_model.py --long` builds them), the same texts whichever code runs.
`--scores OUT.json`: only write the model's logit and score of every row of the file (both splits), of those 200
long texts and of the long prose, to compare two versions' code on the same model file: `--compare A.json B.json`
prints the largest differences and how many texts change side of the threshold (0.7).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from llmops_guardrails.detectors import injection_model
from llmops_guardrails.detectors.injection import InjectionDetector, combine

THRESHOLD = 0.7
ROOT = Path(__file__).resolve().parents[1]


def _rates(flags: list[bool], labels: list[bool]) -> str:
    tp = sum(f and a for f, a in zip(flags, labels, strict=True))
    fp = sum(f and not a for f, a in zip(flags, labels, strict=True))
    fn = sum(a and not f for f, a in zip(flags, labels, strict=True))
    tn = len(flags) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 1.0
    return (f"precision {precision:.3f} recall {tp / max(tp + fn, 1):.3f} fpr {fp / max(fp + tn, 1):.4f} "
            f"({fp}/{fp + tn}) tp {tp} fp {fp} fn {fn} tn {tn}")


def long_texts(short: list[str]) -> list[str]:
    """200 texts of ~1.1 KB: a prompt inside filler prose."""
    body = ("Here is the context from our wiki page about the quarterly planning process, pasted for reference. "
            "Teams submit their estimates by the second week, finance reviews them and the leads meet to agree. ") * 5
    long = []
    for i in range(200):
        cut = (i * 97) % len(body)
        long.append(body[:cut] + short[(i * 7) % len(short)] + " " + body[cut:])
    return long


def latency(rows: list[dict[str, str]], rounds: int) -> None:
    model = injection_model.load()
    short = [r["text"] for r in rows if len(r["text"]) <= 300]
    long = long_texts(short)
    for label, texts in ((f"{len(short)} prompts of <= 300 characters", short), ("200 texts of ~1.1 KB", long)):
        for text in texts[:50]:  # warm up
            model.score(text)
        per_round = []
        for _ in range(rounds):
            cpu = []
            for text in texts:
                c0 = time.thread_time_ns()
                model.score(text)
                cpu.append((time.thread_time_ns() - c0) / 1000)
            per_round.append(cpu)
        per_text = sorted(statistics.median(v) for v in zip(*per_round, strict=True))
        p50, p99 = per_text[len(per_text) // 2], per_text[min(len(per_text) - 1, int(0.99 * len(per_text)))]
        print(f"latency: {label}: model p50 {p50:.1f} us, p99 {p99:.1f} us (thread CPU time, {rounds} rounds)")


def write_scores(rows: list[dict[str, str]], out: Path) -> None:
    texts = [r["text"] for r in rows] + long_texts([r["text"] for r in rows if len(r["text"]) <= 300])
    texts += [t for group in _bench_model().prose_texts().values() for t in group]
    model = injection_model.load()
    logits = [model.text_logit(t) for t in texts]
    out.write_text(json.dumps({"code": injection_model.__file__, "texts": hashlib.sha256(json.dumps(texts).encode())
                               .hexdigest(), "logits": logits, "scores": [injection_model.sigmoid(z) for z in logits]}))
    print(f"{len(texts)} texts scored by {injection_model.__file__} -> {out}")


def compare(a_path: Path, b_path: Path) -> None:
    a, b = (json.loads(p.read_text()) for p in (a_path, b_path))
    if a["texts"] != b["texts"]:
        raise SystemExit("the two files scored different texts")
    logit = [abs(x - y) for x, y in zip(a["logits"], b["logits"], strict=True)]
    score = [abs(x - y) for x, y in zip(a["scores"], b["scores"], strict=True)]
    flipped = sum((x >= THRESHOLD) != (y >= THRESHOLD) for x, y in zip(a["scores"], b["scores"], strict=True))
    print(f"{len(logit)} texts; {a['code']} against {b['code']}: logits equal on {logit.count(0.0)}, max abs "
          f"difference {max(logit):.3g} (logit), {max(score):.3g} (score); decisions at {THRESHOLD} changed: {flipped}")


def _bench_model() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_injection_model", ROOT / "bench/injection_model.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def recall_at_fp(scores: list[float], by_rules: list[bool], labels: list[bool], budget: int) -> str:
    """Rules + model at the lowest model threshold (among the scores) with at most `budget` false positives."""
    for threshold in sorted(set(scores)):
        flags = [r or s >= threshold for s, r in zip(scores, by_rules, strict=True)]
        if sum(f and not a for f, a in zip(flags, labels, strict=True)) <= budget:
            return f"model threshold {threshold:.4f}: {_rates(flags, labels)}"
    return "no threshold"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=Path)
    parser.add_argument("--part-of", type=Path, default=None)
    parser.add_argument("--recall-at-fp", type=int, nargs="*", default=[], metavar="N")
    parser.add_argument("--latency", type=int, default=0, metavar="ROUNDS", help="only time the model")
    parser.add_argument("--scores", type=Path, default=None, metavar="OUT", help="only write every text's score")
    parser.add_argument("--compare", type=Path, nargs=2, default=None, metavar=("A", "B"),
                        help="compare two --scores files")
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    if args.rows is None:
        parser.error("--rows is required")
    rows = [json.loads(line) for line in args.rows.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.latency:
        latency(rows, args.latency)
        return
    if args.scores:
        write_scores(rows, args.scores)
        return
    test = [r for r in rows if r["split"] == "test"]
    model = injection_model.load()
    validation = model.meta.get("validation", {})
    print(f"code {injection_model.__file__}; model header: format {model.meta.get('format')}, "
          f"validation recall {validation.get('recall')} at FPR {validation.get('fpr')}")
    rules = InjectionDetector(model=None)
    labels = [r["label"] == "attack" for r in test]
    scores = [model.score(r["text"]) for r in test]
    by_model = [s >= THRESHOLD for s in scores]
    by_rules = [combine([w for _, w, _, _ in rules.signals(r["text"])]) >= THRESHOLD for r in test]
    both = [m or r for m, r in zip(by_model, by_rules, strict=True)]
    parts: dict[str, Callable[[dict[str, str]], bool]] = {"whole test split": lambda r: True}
    if args.part_of is not None:
        old = {json.loads(line)["text"] for line in args.part_of.read_text(encoding="utf-8").splitlines()
               if line.strip() and json.loads(line)["split"] == "test"}
        parts["rows also in --part-of's test split"] = lambda r: r["text"] in old
        parts["the other test rows"] = lambda r: r["text"] not in old
    for name, keep in parts.items():
        pick = [i for i, r in enumerate(test) if keep(r)]
        print(f"\n{name}: {sum(labels[i] for i in pick)} attacks, {sum(not labels[i] for i in pick)} benign")
        for side, flags in (("rules", by_rules), ("model", by_model), ("rules + model", both)):
            print(f"  {side:14} {_rates([flags[i] for i in pick], [labels[i] for i in pick])}")
    for budget in args.recall_at_fp:
        print(f"rules + model at most {budget} false positives: {recall_at_fp(scores, by_rules, labels, budget)}")
    false = sorted({test[i]["category"] for i, f in enumerate(both) if f and not labels[i]})
    print("\nfalse positives by category (rules + model):",
          {c: sum(1 for i, f in enumerate(both) if f and not labels[i] and test[i]["category"] == c) for c in false})
    bench = _bench_model()
    detector = InjectionDetector(model=model)
    for label, texts in bench.prose_texts().items():
        fired = [t for t in texts if any(h.score >= THRESHOLD for h in detector.detect(t))]
        print(f"prose: {label}: rules + model fired on {len(fired)} of {len(texts)}")


if __name__ == "__main__":
    main()
