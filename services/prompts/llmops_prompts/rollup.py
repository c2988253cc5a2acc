"""What the report reads of one variant over one stretch of time (a UTC hour, or the part of one inside the
report's window), and how stretches merge into a `VariantData`, pure.

A part holds exact sums (costs and scores as `Decimal`: the ledger's numeric costs summed exactly, scores
through Postgres's float8 -> numeric), the distinct units as sorted 64-bit hashes and the latencies sorted, so
that merging parts is exact: the same counts, the same unit count (up to a collision of two units' 64-bit
hashes: about n^2 / 2^65, 1e-9 for 200,000 units), the same sorted latencies and the same moments as one pass
over the raw rows, whatever the split. The stores build parts (`store.calls`) and keep closed hours' parts
(`store.report_hours`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

import numpy as np

from llmops_prompts.report import VariantData
from llmops_prompts.stats import Moments

ZERO = Decimal(0)


@dataclass(frozen=True)
class Sums:
    """n, sum and sum of squares, exact."""

    n: int = 0
    total: Decimal = ZERO
    squares: Decimal = ZERO

    def __add__(self, other: Sums) -> Sums:
        return Sums(self.n + other.n, self.total + other.total, self.squares + other.squares)

    def moments(self) -> Moments:
        """Mean and sample variance (ddof 1) computed exactly from the sums, then rounded to floats once."""
        if not self.n:
            return Moments(0, 0.0, 0.0)
        with localcontext() as context:
            context.prec = 120  # enough for numeric(38,20) squared summed: no rounding before the float
            mean = self.total / self.n
            var = (self.squares - self.total * mean) / (self.n - 1) if self.n > 1 else ZERO
        return Moments(self.n, float(mean), max(0.0, float(var)))


@dataclass
class Part:
    """One variant's calls over one stretch of time."""

    calls: int = 0
    errors: int = 0
    findings: int = 0
    cost: Sums = field(default_factory=Sums)
    units: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # distinct hashes, sorted
    latencies: np.ndarray = field(default_factory=lambda: np.empty(0))  # sorted
    scores: dict[str, Sums] = field(default_factory=dict)


def unit_hashes(raw: bytes | None) -> np.ndarray:
    """Postgres's `int8send` of each hash, concatenated (big-endian)."""
    return np.frombuffer(raw or b"", dtype=">i8").astype(np.int64)


def floats(raw: bytes | None) -> np.ndarray:
    """Postgres's `float8send` of each value, concatenated (big-endian)."""
    return np.frombuffer(raw or b"", dtype=">f8").astype(np.float64)


def distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (a stable sort merges sorted runs in linear time; `np.unique` was 100 times
    slower on 400,000 hashes)."""
    out = np.array(values, dtype=np.int64)
    out.sort(kind="stable")
    return out[np.concatenate(([True], out[1:] != out[:-1]))] if out.size else out


def ascending(values: np.ndarray) -> np.ndarray:
    """`values` sorted (stable: linear on sorted runs, the parts' latencies)."""
    out = np.array(values, dtype=np.float64)
    out.sort(kind="stable")
    return out


def merge(parts: Iterable[Part]) -> VariantData:
    """One variant's `VariantData` from its parts (disjoint stretches of time), without its costs' values (the
    caller reads them for a small variant: `VariantData.costs`)."""
    parts = list(parts)
    cost, scores = Sums(), dict[str, Sums]()
    for p in parts:
        cost = cost + p.cost
        for rubric, s in p.scores.items():
            scores[rubric] = scores.get(rubric, Sums()) + s
    units = distinct(np.concatenate([p.units for p in parts])) if parts else np.empty(0, dtype=np.int64)
    latencies = ascending(np.concatenate([p.latencies for p in parts])) if parts else np.empty(0)
    return VariantData(calls=sum(p.calls for p in parts), units=int(units.size), errors=sum(p.errors for p in parts),
                       findings=sum(p.findings for p in parts), cost=cost.moments(), costs=None,
                       latencies=latencies, scores={rubric: s.moments() for rubric, s in scores.items()})


def merge_all(parts: Iterable[tuple[str, Part]]) -> dict[str, VariantData]:
    """Per variant name, its parts merged (`merge`)."""
    by_variant: dict[str, list[Part]] = {}
    for variant, part in parts:
        by_variant.setdefault(variant, []).append(part)
    return {variant: merge(ps) for variant, ps in by_variant.items()}


HOUR = timedelta(hours=1)
SETTLE = timedelta(minutes=1)  # a stretch ending later than this before now is the one under way (not kept)


@dataclass(frozen=True)
class Stretch:
    """[start, end) inside a report's window and inside one UTC `hour`; `closed` when it ended at least `SETTLE`
    before `now` (the cache may keep it), else it is under way (aggregated from the raw rows each time: a window
    that ends now ends somewhere else at the next request). Closed is about what is worth keeping, not about
    correctness: a kept stretch is used only while its hour's stamp matches (`store.report_hours`)."""

    start: datetime
    end: datetime
    hour: datetime
    closed: bool

    @property
    def whole(self) -> bool:
        return self.start == self.hour and self.end == self.hour + HOUR


def stretches(start: datetime, end: datetime, now: datetime) -> list[Stretch]:
    """The window [start, end) cut at UTC hour boundaries."""
    out: list[Stretch] = []
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour < end:
        s, e = max(hour, start), min(hour + HOUR, end)
        if s < e:
            out.append(Stretch(s, e, hour, e <= now - SETTLE))
        hour += HOUR
    return out
