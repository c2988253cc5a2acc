"""Detectors: each turns text into `Hit`s (span, kind, score in [0, 1]); none does I/O."""
