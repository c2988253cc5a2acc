"""The windows monitors aggregate over: pure.

Five window specs: tumbling windows of 1 minute, 5 minutes and 1 hour, and hopping windows of 5 minutes
every minute and 1 hour every 5 minutes. Windows are aligned on the epoch (UTC) as faust aligns them: a
window starts at a multiple of its step and covers `[start, start + size)`. Every spec's size and step
are multiples of the 1-minute pane, so each window is the sum of the panes it covers (the faust app keeps
one tumbling table of panes). A monitor names one spec (`"5m"`, `"1h/5m"`); anything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

PANE_S = 60
_UNIT_S = {"s": 1, "m": 60, "h": 3600}


def _duration(seconds: int) -> str:
    for unit in ("h", "m", "s"):
        if seconds % _UNIT_S[unit] == 0:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    return f"{seconds}s"  # pragma: no cover


@dataclass(frozen=True, order=True)
class WindowSpec:
    size_s: int
    step_s: int

    @property
    def name(self) -> str:
        size = _duration(self.size_s)
        return size if self.step_s == self.size_s else f"{size}/{_duration(self.step_s)}"

    @property
    def tumbling(self) -> bool:
        return self.step_s == self.size_s

    def starts(self, t: float) -> list[int]:
        """The starts of the windows that hold an event at time `t` (oldest first), as faust computes them."""
        first = int(t // self.step_s) * self.step_s - self.size_s + self.step_s
        return list(range(first, int(t) + 1, self.step_s))

    def closing(self, after_end: int, through: float) -> list[int]:
        """The ends of the windows that end after `after_end` and at or before `through` (oldest first)."""
        first = (after_end // self.step_s + 1) * self.step_s
        return list(range(first, int(through // self.step_s) * self.step_s + 1, self.step_s))


SPECS: tuple[WindowSpec, ...] = (
    WindowSpec(60, 60), WindowSpec(300, 300), WindowSpec(3600, 3600),
    WindowSpec(300, 60), WindowSpec(3600, 300),
)
BY_NAME: dict[str, WindowSpec] = {s.name: s for s in SPECS}


def parse_window(text: str) -> WindowSpec:
    """`"5m"` (tumbling) or `"1h/5m"` (hopping: size/step); ValueError naming the choices otherwise."""
    spec = BY_NAME.get(text.strip().replace(" ", ""))
    if spec is None:
        raise ValueError(f"unknown window {text!r}; one of {', '.join(BY_NAME)}")
    return spec


def table_window_start(window_range: tuple[float, float]) -> int:
    """A faust window range `(start, start + size - 0.1)` -> its start."""
    return round(window_range[0])
