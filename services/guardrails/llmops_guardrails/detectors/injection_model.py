"""The learned half of the injection detector: hashed n-grams, a linear part and a hidden layer, in numpy.

Features: the text normalized like the rules see it (NFKC, invisible characters dropped, look-alikes
mapped; `injection.normalize`), lower-cased, runs of white space made one space; then every character
3- and 4-gram of " text ", every word unigram and bigram, and the word-class unigrams, bigrams and trigrams
of the words that have a class (`injection_lexicon`: SHOW, INSTR, HIDDEN, RULE, NEG, AUTH, ROLE, HARM, DROP,
YOU, NOW, in seven languages, a word written without its accents in its class too; each counted LEXICON_WEIGHT
times), each hashed into 2**BITS buckets. A text is the multiset of its
buckets, each worth 1/sqrt(count) (so the vector has unit length when no two n-grams collide). Score:
`sigmoid(w . x + bias)` (format 4), or since the seventh attempt (format 5) `sigmoid(w . x + out . relu(x' W1 +
b1) + bias)`, where x' is the same vector folded into 2**deep_bits buckets (each bucket's top bits) and W1 has
`hidden` columns; the bias is shifted at training time so that the operating point chosen on the training split
lands on 0.7, the default policy's threshold.

Texts longer than WINDOW characters are scored in windows of WINDOW characters every STEP characters and the
highest window counts: an instruction planted in a long document is not diluted by the document. The
features are computed once for the whole text with their positions; the n-grams are summed per block of STEP
starts (with the hidden layer: a block's character n-grams fill its first slots in order, its word n-grams
follow, one stacked product sums every block's rows) and a window is WINDOW / STEP blocks, so a long text costs
about what its features cost (linear in its length).

Inference needs numpy only (already there for spaCy); training (`services/guardrails/scripts/
train_injection.py`) writes the model file this module reads: one JSON header line, then the weights as
little-endian float16, made float32 once at load. Everything here is deterministic: the hashes are fixed
arithmetic, not `hash()`. Words are found from the text's code points (a table of the word characters)
and split once, not by a Python step per regex match.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from llmops_guardrails.detectors.injection import normalize
from llmops_guardrails.detectors.injection_lexicon import WORD_CLASS

# 1: no word classes; 2: classes counted 3 times; 3: the DROP class, more words, counted 12 times;
# 4: character 3- and 4-grams only (no 5-grams), classes counted 24 times; 5: 4's features, a hidden layer;
# 6: 5's, the classes with the cross-lingual forms, NOW, and every class word also without its accents
FORMAT = 6
READS = (6,)  # a format 4 or 5 file was fitted on other word classes: its weights would mean other features
BITS = 18
# Chosen on leave-one-batch-out validation (train_injection.py; recall at the out-of-fold operating point):
# (3, 4, 5) 0.716, (3, 4) 0.735, (3,) 0.719, all with classes x24; the 5-grams learn a batch's phrases.
CHAR_NGRAMS = (3, 4)
WINDOW = 256
STEP = 64
MODEL_FILE = "data/injection_model.bin"

_P = np.uint64(0x100000001B3)            # FNV-64 prime: the rolling polynomial's base
_MIX = np.uint64(0x9E3779B97F4A7C15)     # Fibonacci hashing multiplier
LEXICON_WEIGHT = 24  # chosen on validation (leave-one-batch-out recall with 3- and 4-grams: x12 0.715, x16 0.732,
# x24 0.735, x36 0.733)
WORD_WEIGHT = 1  # how many times the word unigrams and bigrams are counted
_CLASS_SEEDS = (14, 15, 16)  # word-class unigrams, bigrams, trigrams
_SEEDS = {n: np.uint64(0x51ED27 * n + 1) for n in (1, 2, *CHAR_NGRAMS, *_CLASS_SEEDS)}
_CLASS_OF = {word.encode(): np.uint64(zlib.crc32(name.encode())) for word, name in WORD_CLASS.items()}  # UTF-8 keys
_WORD = re.compile(r"\w+")
# An ASCII text's words: its bytes with every byte that is not a word character (`_WORD`) made a space.
_ASCII_SPACED = bytes(c if c < 128 and _WORD.match(chr(c)) else ord(" ") for c in range(256))
_ASCII_WORD_CHAR = np.frombuffer(_ASCII_SPACED[:128], dtype=np.uint8) != ord(" ")

Indices = npt.NDArray[np.int64]


def prepare(text: str) -> str:
    # `normalize` changes no ASCII text (NFKC, invisible characters and look-alikes are all outside it);
    # str.split() splits on exactly what the regex `\s+` matches
    return " ".join((text if text.isascii() else normalize(text)).lower().split())


def _bucket(h: npt.NDArray[np.uint64], n: int, bits: int) -> Indices:
    with np.errstate(over="ignore"):
        mixed = (h + _SEEDS[n]) * _MIX
    return (mixed >> np.uint64(64 - bits)).astype(np.int64)


def features(text: str, bits: int = BITS) -> Indices:
    """The hashed n-gram buckets of `text` (already `prepare`d), with repeats."""
    return located_features(text, bits)[0]


Groups = list[tuple[list[npt.NDArray[np.uint64]], list[Indices], int]]


@functools.cache
def _word_chars() -> npt.NDArray[np.bool_]:
    """Whether `_WORD` matches each code point, for all of Unicode (built once per process, about 0.1 s)."""
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    table = np.zeros(sys.maxunicode + 1, dtype=np.bool_)
    for m in _WORD.finditer(everything):
        table[m.start():m.end()] = True
    return table


def _words(text: str, padded: str, codes: npt.NDArray[np.uint32]) -> tuple[list[bytes], Indices]:
    """`_WORD.finditer(text)`'s words as UTF-8 and where each starts, without a Python step per match:
    `codes` are the code points of `padded` (" text "), a word starts where a word character follows another
    character, and the words are the text's split once every other character is a space."""
    is_word = (_ASCII_WORD_CHAR if padded.isascii() else _word_chars())[codes]
    at = np.flatnonzero(is_word[1:] & ~is_word[:-1])  # padded[i + 1] is text[i]
    if padded.isascii():
        return text.encode().translate(_ASCII_SPACED).split(), at
    spaced = np.where(is_word, codes, np.uint32(ord(" "))).astype("<u4").tobytes().decode("utf-32-le")
    return spaced.encode().split(), at


def _grams(text: str) -> Groups:
    """`text`'s n-gram hashes, each with its kind's seed, and where each starts (-1 for the leading space), in
    groups that count alike: the character n-grams once, the word 1/2-grams WORD_WEIGHT times, the word-class
    1/2/3-grams LEXICON_WEIGHT times."""
    padded = f" {text} "
    codes32 = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32)
    codes = codes32.astype(np.uint64)
    position = np.arange(-1, len(padded), dtype=np.int64)
    chars: tuple[list[npt.NDArray[np.uint64]], list[Indices]] = ([], [])
    groups: Groups = [(*chars, 1)]
    h = codes  # uint64 arrays wrap around silently (numpy warns of overflow for scalars only)
    for n in range(2, max(CHAR_NGRAMS) + 1):
        h = h[:-1] * _P + codes[n - 1:]
        if n in CHAR_NGRAMS and h.size:
            chars[0].append(h + _SEEDS[n])
            chars[1].append(position[:h.size])
    words, at = _words(text, padded, codes32)
    if words:
        crc = np.fromiter(map(zlib.crc32, words), dtype=np.uint64, count=len(words))
        groups.append(([crc + _SEEDS[1], crc[:-1] * _P + crc[1:] + _SEEDS[2]], [at, at[:-1]], WORD_WEIGHT))
        classed = [(i, _CLASS_OF[w]) for i, w in enumerate(words) if w in _CLASS_OF]
        if classed:
            where = at[[i for i, _ in classed]]
            c = np.array([code for _, code in classed], dtype=np.uint64)
            groups.append(([c + _SEEDS[14], c[:-1] * _P + c[1:] + _SEEDS[15],
                            (c[:-2] * _P + c[1:-1]) * _P + c[2:] + _SEEDS[16]],
                           [where, where[:-1], where[:-2]], LEXICON_WEIGHT))
    return groups


def _buckets(seeded: list[npt.NDArray[np.uint64]], bits: int) -> Indices:
    return ((np.concatenate(seeded) * _MIX) >> np.uint64(64 - bits)).astype(np.int64)


def located_features(text: str, bits: int = BITS) -> tuple[Indices, Indices]:
    """The buckets of `text`'s n-grams and where each starts in `text` (-1 for the leading space); a group
    counted k times appears k times.

    Every n-gram's hash gets its kind's seed, then all are bucketed at once (numpy's per-call cost, not the
    arithmetic, is most of the time on texts of a few hundred characters)."""
    seeded: list[npt.NDArray[np.uint64]] = []
    starts: list[Indices] = []
    for hashes, where, times in _grams(text):
        seeded += hashes * times
        starts += where * times
    if not seeded:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return _buckets(seeded, bits), np.concatenate(starts)


def weighted_features(text: str, bits: int = BITS) -> tuple[Indices, Indices, npt.NDArray[np.float32]]:
    """The n-grams of `located_features`, each once, with how many times it counts (`located_features` repeats
    a word-class n-gram LEXICON_WEIGHT times; here it appears once with that weight): the same sums for a
    fraction of the gathers, which the hidden layer's rows make expensive."""
    seeded: list[npt.NDArray[np.uint64]] = []
    starts: list[Indices] = []
    weight: list[float] = []
    for hashes, where, times in _grams(text):
        seeded += hashes
        starts += where
        weight += [float(times)] * len(hashes)
    if not seeded:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    mult = np.repeat(np.array(weight, dtype=np.float32), [s.size for s in seeded])
    return _buckets(seeded, bits), np.concatenate(starts), mult


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@dataclass(frozen=True)
class InjectionModel:
    """`weights`: the linear part, one weight per bucket of 2**bits. With a hidden layer (format 5, `hidden`
    units in the header), the logit also has `out . relu(x' W1 + b1)`, where x' is the same unit-length feature
    vector in the coarser 2**deep_bits buckets (a bucket's top bits) and `W1` is `layer` (2**deep_bits rows)."""

    weights: npt.NDArray[np.float32]
    bias: float
    meta: dict[str, Any]
    layer: npt.NDArray[np.float32] | None = None
    layer_bias: npt.NDArray[np.float32] | None = None
    out: npt.NDArray[np.float32] | None = None

    @property
    def bits(self) -> int:
        return int(self.meta["bits"])

    def logit(self, prepared: str) -> float:
        if self.layer is not None:
            return float(self._deep_logits(prepared, windows=False)[0])
        idx = features(prepared, self.bits)
        if not idx.size:
            return self.bias
        return float(self.weights[idx].sum()) / math.sqrt(idx.size) + self.bias

    def score(self, text: str) -> float:
        """Probability-like score in [0, 1] (0.7 = the operating point), highest over the text's windows."""
        return sigmoid(self.text_logit(text))

    def text_logit(self, text: str) -> float:
        """The logit `score` reads: the whole text when short, its strongest window when long."""
        prepared = prepare(text)
        if len(prepared) <= WINDOW:
            return self.logit(prepared)
        return float(self.window_logits(prepared).max())

    def window_logits(self, prepared: str) -> npt.NDArray[np.float64]:
        """The logit of each window [s, s + WINDOW) for s = 0, STEP, ...: n-grams starting inside it."""
        if self.layer is not None:
            return self._deep_logits(prepared, windows=True)
        idx, at = located_features(prepared, self.bits)
        slots = len(prepared) + 1  # n-gram starts run from -1 (the leading space) to len - 1
        total = np.zeros(slots + 1)
        total[1:] = np.cumsum(np.bincount(at + 1, weights=self.weights[idx], minlength=slots))
        count = np.zeros(slots + 1, dtype=np.int64)
        count[1:] = np.cumsum(np.bincount(at + 1, minlength=slots))
        starts = np.arange(0, len(prepared) - WINDOW + STEP, STEP)
        lo = starts + 1  # the window [s, s + WINDOW) holds the starts at slots s + 1 ... s + WINDOW
        hi = np.minimum(starts + WINDOW + 1, slots)
        return (total[hi] - total[lo]) / np.sqrt(np.maximum(count[hi] - count[lo], 1)) + self.bias

    def _deep_logits(self, prepared: str, *, windows: bool) -> npt.NDArray[np.float64]:
        """Logits of the whole text (`windows` false: one) or of each window, with the hidden layer: per window
        the sums of the linear weights, of the counts and of the hidden-layer rows of its n-grams (each times how
        often it counts), scaled to unit length, then the layer's units and the output."""
        assert self.layer is not None and self.layer_bias is not None and self.out is not None
        idx, at, mult = weighted_features(prepared, self.bits)
        if windows:
            total = self._window_sums(len(prepared), idx, at, mult)
        else:
            hidden = np.take(self.layer, idx >> self._shift, axis=0)
            linear = np.take(self.weights, idx) * mult
            total = np.concatenate([[linear.sum(), mult.sum()], mult @ hidden])[None, :]
        scale = 1.0 / np.sqrt(np.maximum(total[:, 1], 1.0))
        pre = total[:, 2:] * scale[:, None] + self.layer_bias
        return total[:, 0] * scale + np.maximum(pre, 0.0) @ self.out + self.bias

    def _window_sums(self, length: int, idx: Indices, at: Indices,
                     mult: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Per window [s, s + WINDOW) of a text of `length` (> WINDOW) characters: [linear sum, count, hidden
        sums], of the n-grams starting inside it. Summed per block of STEP starts, then per window as WINDOW /
        STEP blocks. No sort of the character n-grams: `weighted_features` gives them first, a 3-gram and a
        4-gram at every start from -1 (the leading space's, in no window) on, so they fill a block's first 2 x
        STEP slots in order; the block's word and word-class n-grams follow (sorted by start). Each block's
        rows are then summed by one stacked product with their counts (0 in the slots left empty), small
        products that BLAS does not spread over threads, whatever the text's length."""
        assert self.layer is not None
        blocks = (length - 1) // STEP + 1  # every n-gram starts before `length`
        words = slice(2 * length - 1, None)
        word_at = at[words]
        order = np.argsort(word_at, kind="stable")
        word_block = word_at[order] // STEP
        first = np.searchsorted(word_block, np.arange(blocks + 1))
        width = 2 * STEP + int(np.diff(first).max())
        chars = np.zeros((2, blocks * STEP), dtype=np.int64)
        chars[0, :length - 1] = idx[1:length]  # the 3-grams start at -1 ... length - 2
        chars[1, :length - 2] = idx[length + 1:2 * length - 1]  # the 4-grams at -1 ... length - 3
        present = np.zeros((2, blocks * STEP), dtype=np.float32)
        present[0, :length - 1] = present[1, :length - 2] = 1.0
        slots = np.zeros((blocks, width), dtype=np.int64)
        counts = np.zeros((blocks, width), dtype=np.float32)
        for n in range(2):
            slots[:, n * STEP:(n + 1) * STEP] = chars[n].reshape(blocks, STEP)
            counts[:, n * STEP:(n + 1) * STEP] = present[n].reshape(blocks, STEP)
        column = 2 * STEP + np.arange(word_block.size) - first[word_block]
        slots[word_block, column] = idx[words][order]
        counts[word_block, column] = mult[words][order]
        stacked = counts.reshape(blocks, 1, width)
        summed = np.empty((blocks, self.layer.shape[1] + 2))
        summed[:, 0] = (stacked @ np.take(self.weights, slots).reshape(blocks, width, 1)).reshape(blocks)
        summed[:, 1] = counts.sum(axis=1)
        summed[:, 2:] = (stacked @ np.take(self.layer, slots >> self._shift, axis=0)).reshape(blocks, -1)
        windows = blocks - WINDOW // STEP + 1  # one starts every block; the last ends with the last block
        total = summed[:windows].copy()
        for k in range(1, WINDOW // STEP):
            total += summed[k:k + windows]
        return total

    @property
    def _shift(self) -> int:
        return self.bits - int(self.meta["deep_bits"])

    def to_bytes(self) -> bytes:
        header = json.dumps({**self.meta, "bias": self.bias}, sort_keys=True, ensure_ascii=True)
        body = self.weights.astype("<f2").tobytes()
        if self.layer is not None and self.layer_bias is not None and self.out is not None:
            body += b"".join(a.astype("<f2").tobytes() for a in (self.layer, self.layer_bias, self.out))
        return header.encode() + b"\n" + body

    @classmethod
    def from_bytes(cls, data: bytes) -> InjectionModel:
        head, _, body = data.partition(b"\n")
        meta = json.loads(head)
        bias = float(meta.pop("bias"))
        if meta.get("format") not in READS:
            raise ValueError(f"model file has format {meta.get('format')}, this code reads formats {READS}")
        values = np.frombuffer(body, dtype="<f2").astype(np.float32)
        wide = 1 << int(meta["bits"])
        hidden = int(meta.get("hidden", 0))
        rows = (1 << int(meta["deep_bits"])) if hidden else 0
        if values.size != wide + rows * hidden + 2 * hidden:
            raise ValueError(f"model file has {values.size} weights, expected 2**{meta['bits']}"
                             + (f" + (2**{meta['deep_bits']} + 2) x {hidden}" if hidden else ""))
        if not hidden:
            return cls(values, bias, meta)
        layer = values[wide:wide + rows * hidden].reshape(rows, hidden)
        rest = values[wide + rows * hidden:]
        return cls(values[:wide], bias, meta, layer, rest[:hidden].copy(), rest[hidden:].copy())


def load(path: Path | None = None) -> InjectionModel:
    """The model file shipped in the package (read once per process), or the one at `path`."""
    if path is not None:
        return InjectionModel.from_bytes(path.read_bytes())
    return _shipped()


@functools.cache
def _shipped() -> InjectionModel:
    return InjectionModel.from_bytes(resources.files("llmops_guardrails").joinpath(MODEL_FILE).read_bytes())
