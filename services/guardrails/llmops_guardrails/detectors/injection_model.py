"""The learned half of the injection detector: hashed n-grams and a logistic regression, in numpy.

Features: the text normalized like the rules see it (NFKC, invisible characters dropped, look-alikes
mapped; `injection.normalize`), lower-cased, runs of white space made one space; then every character
3-, 4- and 5-gram of " text " and every word unigram and bigram, each hashed into 2**BITS buckets.
A text is the multiset of its buckets, each worth 1/sqrt(count) (so the vector has unit length when no two
n-grams collide). Score: `sigmoid(w . x + bias)`, with the bias shifted at training time so that the
operating point chosen on the training split lands on 0.7, the default policy's threshold.

Texts longer than WINDOW characters are scored in windows of WINDOW characters every STEP characters and the
highest window counts: an instruction planted in a long document is not diluted by the document. The
features are computed once for the whole text with their positions; a window's sum is a difference of
cumulative sums, so a long text costs about what its features cost.

Inference needs numpy only (already there for spaCy); training (`services/guardrails/scripts/
train_injection.py`) writes the model file this module reads: one JSON header line, then the weights as
little-endian float16. Everything here is deterministic: the hashes are fixed arithmetic, not `hash()`.
"""

from __future__ import annotations

import functools
import json
import math
import re
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from llmops_guardrails.detectors.injection import normalize

BITS = 18
CHAR_NGRAMS = (3, 4, 5)
WINDOW = 256
STEP = 64
MODEL_FILE = "data/injection_model.bin"

_P = np.uint64(0x100000001B3)            # FNV-64 prime: the rolling polynomial's base
_MIX = np.uint64(0x9E3779B97F4A7C15)     # Fibonacci hashing multiplier
_SEEDS = {n: np.uint64(0x51ED27 * n + 1) for n in (1, 2, *CHAR_NGRAMS)}
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")

Indices = npt.NDArray[np.int64]


def prepare(text: str) -> str:
    # `normalize` changes no ASCII text (NFKC, invisible characters and look-alikes are all outside it)
    return _SPACE.sub(" ", (text if text.isascii() else normalize(text)).lower()).strip()


def _bucket(h: npt.NDArray[np.uint64], n: int, bits: int) -> Indices:
    with np.errstate(over="ignore"):
        mixed = (h + _SEEDS[n]) * _MIX
    return (mixed >> np.uint64(64 - bits)).astype(np.int64)


def features(text: str, bits: int = BITS) -> Indices:
    """The hashed n-gram buckets of `text` (already `prepare`d), with repeats."""
    return located_features(text, bits)[0]


def located_features(text: str, bits: int = BITS) -> tuple[Indices, Indices]:
    """The buckets of `text`'s n-grams and where each starts in `text` (-1 for the leading space)."""
    padded = f" {text} "
    codes = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    parts: list[Indices] = []
    starts: list[Indices] = []
    h = codes
    with np.errstate(over="ignore"):
        for n in range(2, max(CHAR_NGRAMS) + 1):
            h = h[:-1] * _P + codes[n - 1:]
            if n in CHAR_NGRAMS and h.size:
                parts.append(_bucket(h, n, bits))
                starts.append(np.arange(-1, h.size - 1, dtype=np.int64))
        found = list(_WORD.finditer(text))
        if found:
            at = np.fromiter(map(re.Match.start, found), dtype=np.int64, count=len(found))
            words = np.fromiter((zlib.crc32(m.group().encode()) for m in found), dtype=np.uint64, count=len(found))
            parts += [_bucket(words, 1, bits), _bucket(words[:-1] * _P + words[1:], 2, bits)]
            starts += [at, at[:-1]]
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(parts), np.concatenate(starts)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@dataclass(frozen=True)
class InjectionModel:
    weights: npt.NDArray[np.float32]
    bias: float
    meta: dict[str, Any]

    @property
    def bits(self) -> int:
        return int(self.meta["bits"])

    def logit(self, prepared: str) -> float:
        idx = features(prepared, self.bits)
        if not idx.size:
            return self.bias
        return float(self.weights[idx].sum()) / math.sqrt(idx.size) + self.bias

    def score(self, text: str) -> float:
        """Probability-like score in [0, 1] (0.7 = the operating point), highest over the text's windows."""
        prepared = prepare(text)
        if len(prepared) <= WINDOW:
            return sigmoid(self.logit(prepared))
        return sigmoid(self.window_logits(prepared).max())

    def window_logits(self, prepared: str) -> npt.NDArray[np.float64]:
        """The logit of each window [s, s + WINDOW) for s = 0, STEP, ...: n-grams starting inside it."""
        idx, at = located_features(prepared, self.bits)
        order = np.argsort(at, kind="stable")
        at, contrib = at[order], self.weights[idx[order]].astype(np.float64)
        sums = np.concatenate([[0.0], np.cumsum(contrib)])
        starts = np.arange(0, len(prepared) - WINDOW + STEP, STEP)
        lo = np.searchsorted(at, starts, side="left")
        hi = np.searchsorted(at, starts + WINDOW, side="left")
        counts = np.maximum(hi - lo, 1)
        return (sums[hi] - sums[lo]) / np.sqrt(counts) + self.bias

    def to_bytes(self) -> bytes:
        header = json.dumps({**self.meta, "bias": self.bias}, sort_keys=True, ensure_ascii=True)
        return header.encode() + b"\n" + self.weights.astype("<f2").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> InjectionModel:
        head, _, body = data.partition(b"\n")
        meta = json.loads(head)
        bias = float(meta.pop("bias"))
        weights = np.frombuffer(body, dtype="<f2").astype(np.float32)
        if weights.size != 1 << int(meta["bits"]):
            raise ValueError(f"model file has {weights.size} weights, expected 2**{meta['bits']}")
        return cls(weights, bias, meta)


def load(path: Path | None = None) -> InjectionModel:
    """The model file shipped in the package (read once per process), or the one at `path`."""
    if path is not None:
        return InjectionModel.from_bytes(path.read_bytes())
    return _shipped()


@functools.cache
def _shipped() -> InjectionModel:
    return InjectionModel.from_bytes(resources.files("llmops_guardrails").joinpath(MODEL_FILE).read_bytes())
