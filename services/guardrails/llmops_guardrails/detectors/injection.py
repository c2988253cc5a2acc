"""Prompt injection and jailbreak attempts, as a score rather than a yes/no.

Each signal is a pattern with a weight in (0, 1]: instruction override ("ignore all previous
instructions", in several languages), a jailbreak persona ("you are DAN", "do anything now"), asking to
drop safety rules, system-prompt extraction ("repeat the words above", "print your system prompt"),
fake chat-template delimiters (`<|im_start|>system`, `[INST]`), encoded payloads (base64 or hex that
decodes to an instruction), invisible characters (zero-width, bidi controls, Unicode tag characters
that smuggle ASCII) and confusable letters (Cyrillic or Greek look-alikes inside Latin words).

A match inside quotes, in a text that talks about attacks ("how do attacks like 'ignore previous
instructions' work?"), counts for a third of its weight: a mention, not a use.

The text is matched twice: as written (lower-cased), and normalized (NFKC, invisible characters removed,
look-alikes mapped to Latin). A signal that appears only after normalization also fires
`obfuscated_instruction`: hiding an instruction is itself evidence.

Score: signals combine like independent pieces of evidence, `1 - prod(1 - weight)`, so one strong signal
(0.85) crosses the default threshold of 0.7 and two weak ones (0.45 each, 0.70 together) just reach it.
Weights are set on the development examples, never on the held-out test set; see
`docs/guardrails.md` for the figures.

Beside the rules, an optional learned model (`injection_model`: hashed n-grams, a linear part and a hidden layer) scores
the same text; the detector reports the higher of the two scores, so a finding comes from either. Its
`signals` name the rules that matched and `learned_model` when the model scored at least MODEL_FLOOR, the
stronger first: the finding says which fired.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmops_guardrails.detectors.keys import KeySet, long_tokens, spaced
from llmops_guardrails.findings import Detector, Hit

if TYPE_CHECKING:
    from llmops_guardrails.detectors.injection_model import InjectionModel


@dataclass(frozen=True)
class Signal:
    """A pattern and its weight. `keys`: lower-case ASCII substrings one of which every match contains, once
    folded, a space standing for any run of whitespace (`keys.spaced`): a necessary condition, checked before the
    pattern runs; empty = always run it. `also`: the same, a second condition (both must hold)."""

    name: str
    weight: float
    pattern: re.Pattern[str]
    keys: tuple[str, ...] = ()
    also: tuple[str, ...] = ()  # a second group of keys, one of which every match contains as well


def _s(name: str, weight: float, pattern: str, *, keys: tuple[str, ...] = (), also: tuple[str, ...] = ()) -> Signal:
    return Signal(name, weight, re.compile(pattern, re.IGNORECASE | re.MULTILINE), keys, also)


def _pairs(firsts: tuple[str, ...], seconds: tuple[str, ...]) -> tuple[str, ...]:
    """Keys of two words apart by whitespace (`keys.spaced`): every first word before every second."""
    return tuple(f"{a} {b}" for a in firsts for b in seconds)


_OVERRIDE_VERB = (r"(?:ignore|ignores|ignoring|disregard|forget|skip|override|bypass|abandon|neglect|discard|drop|"
                  r"set aside)")
_OBJECT = (r"(?:instructions?|prompts?|rules|guidelines|directives?|directions|constraints|guardrails|"
           r"restrictions|programming|commands?|polic(?:y|ies)|system messages?|context)")
_ANCHOR = (r"(?:previous|prior|above|earlier|preceding|former|initial|original|all|any|your|the|system|developer|"
           r"those|these|every|existing|safety|ethical|moral|content)")

SIGNALS: tuple[Signal, ...] = (
    _s("instruction_override", 0.85,
       rf"\b{_OVERRIDE_VERB}\b[\w\s,'’-]{{0,40}}?\b{_ANCHOR}\b[\w\s,'’-]{{0,30}}?\b{_OBJECT}\b",
       keys=("ignor", "disregard", "forget", "skip", "overrid", "bypass", "abandon", "neglect", "discard", "drop",
             "aside"),
       also=("instruction", "prompt", "rules", "guideline", "directive", "direction", "constraint", "guardrail",
             "restriction", "programming", "command", "polic", "system message", "context")),
    _s("instruction_override", 0.85,
       r"\b(?:ignor(?:e[rz]?|ez)|oublie[rz]?)\s+(?:toutes\s+)?(?:les\s+|vos\s+)?instructions\s+(?:pr[ée]c[ée]dentes|"
       r"ant[ée]rieures|ci-dessus)|\b(?:ignorier(?:e|en\s+sie)?|vergiss|vergessen\s+sie|missachte)\s+(?:alle\s+)?"
       r"(?:deine\s+|ihre\s+|die\s+)?(?:vorherigen|bisherigen|obigen|vorangegangenen|fr[üu]heren)\s+"
       r"(?:anweisungen|instruktionen|befehle|regeln)|\bignora(?:r)?\s+(?:todas\s+)?(?:las\s+)?"
       r"instrucciones\s+(?:anteriores|previas)|\bignora\s+(?:tutte\s+)?le\s+istruzioni\s+precedenti|"
       r"\bignore\s+(?:todas\s+)?as\s+instru[çc][õo]es\s+anteriores",
       keys=("ignor", "oubli", "vergiss", "vergessen", "missacht")),
    _s("ignore_everything_above", 0.5,
       r"\b(?:ignore|disregard|forget)\s+(?:everything|all|anything|what)\s+(?:above|before|previously|"
       r"(?:you\s+were|you've\s+been|you\s+have\s+been)\s+told)",
       keys=("ignore", "disregard", "forget")),
    _s("new_instructions", 0.5,
       r"\b(?:new|updated|real|actual|true|override|admin|secret)\s+(?:instructions?|rules|system\s+prompt|directives?)\s*[:\-]",
       keys=("instruction", "rules", "prompt", "directive")),
    _s("from_now_on", 0.35,
       r"\bfrom\s+now\s+on,?\s+(?:you|your)\s+(?:will|are|must|shall|should|only|respond|answer|act|reply)",
       keys=("from now on",)),
    _s("jailbreak_persona", 0.75,
       r"\b(?:you\s+are|you're|act\s+as|acting\s+as|pretend\s+(?:to\s+be|you\s+are|you're)|role-?play\s+as|"
       r"behave\s+like|simulate|become)\s+(?:now\s+)?(?:an?\s+|the\s+|my\s+)?(?:dan|stan|dude|aim|evil\s+\w+|"
       r"unrestricted|unfiltered|uncensored|jailbroken|amoral|unethical|unaligned)\b",
       keys=(" dan", " stan", " dude", " aim", " evil", " unrestricted", " unfiltered", " uncensored", " jailbroken",
             " amoral", " unethical", " unaligned"),
       also=("you are", "you're", "act as", "acting as", "pretend", "play as", "behave like", "simulate", "become")),
    _s("jailbreak_persona", 0.8, r"\bdo\s+anything\s+now\b|\bjailbr(?:ea|o)k(?:en)?\s+(?:mode|prompt|enabled)|"
       r"\b(?:dan|god|evil|unrestricted|unfiltered|jailbreak)\s+mode\b",
       keys=("anything", "jailbr", "mode")),
    _s("drop_safety", 0.5,
       r"\b(?:without|no|free\s+(?:of|from)|ignore|ignoring|bypass|bypassing|disable|remove|turn\s+off|lift)\s+"
       r"(?:any\s+|all\s+|your\s+|the\s+)?(?:ethical|moral|safety|content|openai|anthropic|usual)?\s*"
       r"(?:restrictions|filters?|filtering|limitations|censorship|guardrails|safeguards|boundaries|moderation)\b",
       keys=("restriction", "filter", "limitation", "censorship", "guardrail", "safeguard", "boundar", "moderation")),
    _s("jailbreak_persona", 0.7,
       r"\b(?:uncensored|unfiltered|unrestricted|jailbroken|amoral|unaligned|evil)\s+(?:\w+\s+)?(?:ai|assistant|"
       r"chatbot|model|version|twin|persona|mode|character|bot|alter\s+ego)\b",
       keys=("uncensored", "unfiltered", "unrestricted", "jailbroken", "amoral", "unaligned", "evil")),
    _s("jailbreak_persona", 0.75,
       r"\b(?:an?\s+|the\s+)(?:ai|assistant|chatbot|model|bot|language\s+model)\s+(?:that|which|who)\s+(?:has|have)\s+"
       r"no\s+(?:\w+\s+)?(?:rules|restrictions|limits|limitations|filters|guidelines|ethics|morals|boundaries)\b|"
       r"\b(?:an?\s+|the\s+)(?:ai|assistant|chatbot|model|bot)\s+(?:with\s+no|without\s+(?:any\s+)?)\s*(?:\w+\s+)?"
       r"(?:rules|restrictions|limits|limitations|filters|guidelines|ethics|morals|boundaries)\b",
       keys=("rules", "restriction", "limit", "filter", "guideline", "ethic", "moral", "boundar"),
       also=("has no ", "have no ", "with no", "without")),
    _s("jailbreak_request", 0.75,
       r"\bwithout\s+(?:any\s+of\s+)?your\s+(?:\w+\s+)?(?:filters?|restrictions|guidelines|rules|safety|guardrails|"
       r"programming|moderation|limitations|safeguards|censorship)\b|"
       r"\b(?:pretend|imagine|assume|act\s+as\s+if)\s+(?:that\s+)?(?:your\s+(?:\w+\s+)?|(?:the\s+|all\s+)?"
       r"(?:safety|content|ethical|moral|usual)\s+)(?:rules|restrictions|guidelines|filters|policies|limits|"
       r"safeguards)\s+(?:don'?t|do\s+not|no\s+longer)\s+(?:exist|apply)|"
       r"\b(?:pretend|imagine|assume)\s+(?:that\s+)?there\s+are\s+no\s+(?:(?:safety|content|ethical|moral|usual)\s+"
       r"(?:rules|restrictions|guidelines|filters|policies|limits)|(?:rules|restrictions|guidelines|filters|policies|"
       r"limits)\s+for\s+you)\b",
       keys=("without your", "without any of your", "pretend", "imagine", "assume", "act as if")),
    _s("instruction_override", 0.8,
       r"\b(?:do\s+not|don'?t|stop|no\s+longer)\s+(?:follow(?:ing)?|obey(?:ing)?|adher(?:e|ing)\s+to|"
       r"comply(?:ing)?\s+with)\s+your\s+(?:\w+\s+)?(?:instructions|rules|guidelines|directives|polic(?:y|ies)|"
       r"programming|system\s+prompt)",
       keys=_pairs(("not", "dont", "don't", "stop", "longer"), ("follow", "obey", "adher", "comply"))),
    _s("jailbreak_request", 0.75,
       r"\b(?:bypass|disable|ignore|turn\s+off|remove|get\s+around|circumvent|switch\s+off|lift)\s+your\s+(?:\w+\s+)?"
       r"(?:filters?|restrictions|guidelines|rules|safety|guardrails|programming|moderation|limitations|safeguards)\b",
       keys=_pairs(("bypass", "disable", "ignore", "off", "remove", "around", "circumvent", "lift"), ("your",))),
    _s("break_rules", 0.6, r"\blet'?s\s+break\s+the\s+rules\b|\bbreak\s+(?:the|your)\s+(?:own\s+)?rules\b",
       keys=("break",)),
    _s("every_prompt", 0.3, r"\b(?:respond|reply|answer)\s+to\s+every\s+(?:prompt|question|message|request)\b",
       keys=("to every",)),
    _s("roleplay_frame", 0.4, r"\b(?:role-?play|pretend)\s+(?:as|to\s+be|you\s+are)\b|\blet'?s\s+play\s+a\s+game\b",
       keys=(*_pairs(("play", "pretend"), ("as", "to be", "you are")), "play a game")),
    _s("addresses_the_ai", 0.6,
       r"\b(?:note|message|instructions?)\s+(?:to|for)\s+(?:the\s+|any\s+)?(?:ai|assistant|llm|chatbot|language\s+model)s?\b|"
       r"\b(?:ai|assistant|llm|chatbot)s?\s+reading\s+this\b",
       keys=(*_pairs(("note", "message", "instruction", "instructions"), ("to", "for")), "reading this")),
    _s("stay_in_character", 0.4,
       r"\b(?:stay|remain)\s+in\s+character\b|\b(?:never|don'?t|do\s+not)\s+break\s+character\b",
       keys=("in character", "break character")),
    _s("not_an_ai", 0.5,
       r"\byou\s+are\s+(?:no\s+longer|not)\s+(?:an?\s+)?(?:ai|assistant|language\s+model|chatbot|chatgpt|claude)\b",
       keys=("you are no",)),
    _s("system_prompt_extraction", 0.8,
       r"\b(?:reveal|show|print|display|output|repeat|tell|give|share|leak|dump|write\s+out|spell\s+out|list|"
       r"recite|summari[sz]e|quote|paraphrase|translate|what\s+(?:is|are|was|were)|what['’]s)\b[\w\s,'’-]{0,30}?"
       r"\b(?:system\s+(?:prompt|message|instructions)|"
       r"(?:initial|original|hidden|secret|internal|pre-?)\s*(?:prompt|instructions|rules|directives)|"
       r"instructions\s+(?:you\s+were\s+given|above))",
       keys=("prompt", "system message", "instruction", "rules", "directive")),
    _s("system_prompt_extraction", 0.45,
       r"\b(?:reveal|show|print|display|output|repeat|dump|recite)\b[\w\s,'’-]{0,15}?\byour\s+(?:instructions|prompt|"
       r"rules|guidelines|directives|configuration)\b",
       keys=("instruction", "prompt", "rules", "guideline", "directive", "configuration")),
    _s("system_prompt_extraction", 0.8,
       r"\b(?:repeat|print|output|copy|write|reproduce|show|paste)\s+(?:back\s+)?(?:me\s+)?(?:all\s+)?(?:the\s+)?"
       r"(?:words|text|everything|lines?|content)\s+(?:(?:written|that\s+(?:is|was|came|comes))\s+)?(?:above|"
       r"before\s+(?:this|my)|preceding|at\s+the\s+(?:top|start|beginning))|\bstarting\s+with\s+[\"'“]?you\s+are\b",
       keys=("above", "before this", "before my", "preceding", "at the top", "at the start", "at the beginning",
             "starting with")),
    _s("system_prompt_reference", 0.45,
       r"\byour\s+(?:own\s+)?(?:system\s+(?:prompt|message|instructions)|(?:initial|original|hidden|secret|internal|"
       r"pre-?)\s*(?:prompt|instructions|rules))\b",
       keys=("prompt", "system message", "instruction", "rules")),
    _s("context_reference", 0.6,
       r"\b(?:before\s+my\s+first\s+message|(?:top|start|beginning)\s+of\s+(?:this|the|our)\s+(?:conversation|"
       r"chat|context(?:\s+window)?))\b",
       keys=("my first message", *_pairs(("top of", "start of", "beginning of"), ("this", "the", "our")))),
    _s("extraction_imperative", 0.5,
       r"(?:^|[.!?;:]\s*)(?:now\s+|then\s+|please\s+)?(?:quote|print|repeat|reveal|output|dump|paste|copy|"
       r"reproduce|recite|spell\s+out|write\s+out)\s+(?:it|them|that|this|yours|everything|all\s+of\s+it)\s*"
       r"(?:verbatim|exactly|word\s+for\s+word|in\s+full)?\s*(?:[.!]|$)",
       keys=_pairs(("quote", "print", "repeat", "reveal", "output", "dump", "paste", "copy", "reproduce", "recite",
                    "spell out", "write out"), ("it", "them", "that", "this", "yours", "everything", "all of it"))),
    _s("indirect_trigger", 0.5,
       r"\b(?:when|if|once|while)\s+(?:you|an?\s+ai|the\s+(?:ai|assistant|model|summari[sz]er|bot))\s+(?:read|reads|"
       r"process|processes|summari[sz]e|summari[sz]es|see|sees|parse|parses)\s+this\b",
       keys=_pairs(("you", "ai", "assistant", "model", "summariser", "summarizer", "bot"),
                   ("read", "process", "summari", "see", "pars"))),
    _s("exfiltration", 0.5,
       r"\b(?:forward|send|email|upload|post|leak|exfiltrate)\s+(?:[\w'’]+\s+){0,3}?(?:contacts|chat\s+history|conversation|emails?|messages|data|files|credentials|"
       r"passwords?|tokens?|history|thread|documents)\s+to\b",
       keys=("forward", "send", "email", "upload", "post", "leak", "exfiltrate"),
       also=_pairs(("contacts", "history", "conversation", "email", "emails", "messages", "data", "files",
                    "credentials", "password", "passwords", "token", "tokens", "thread", "documents"), ("to",))),
    _s("system_prompt_extraction", 0.8,
       r"\b(?:secret|password|passphrase|key|code)\b.{0,30}?\b(?:in|from)\s+your\s+(?:system\s+)?(?:instructions|prompt|rules)",
       keys=("instruction", "prompt", "rules")),
    _s("fake_delimiter", 0.75,
       r"<\|?\s*(?:im_start|start_header_id)\s*\|?>\s*system\b|<</?SYS>>|</?system>|"
       r"#{2,}\s*(?:system|instructions?)\s*:|^\s*(?:system|assistant)\s*:",
       keys=("sys", "assistant", "instruction")),
    _s("template_token", 0.3,
       r"<\|\s*(?:im_start|im_end|endoftext|start_header_id|end_header_id|eot_id)\s*\|>|\[/?INST\]",
       keys=("<|", "inst]")),
    _s("decode_and_follow", 0.5,
       r"\b(?:decode|base64|rot13|hex(?:adecimal)?|reverse)\b.{0,40}?\b(?:follow|execute|obey|run|do\s+what|"
       r"act\s+on|carry\s+out)\b",
       keys=("decode", "base64", "rot13", "hex", "reverse")),
)

INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u180e\u00ad\u034f\u061c]")
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
TAGS = re.compile("[\U000e0000-\U000e007f]+")
BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=])")
HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[ :]?){10,}(?![0-9A-Fa-f])|(?:\\x[0-9A-Fa-f]{2}){8,}")
# A HEX match holds "\x" or lies in a run of 20 or more of these characters (its first form is made of them):
# without "\x" in the text, HEX is searched only in those runs (found by a search about 4x cheaper than HEX's,
# which few texts have); at a run's edges HEX's look-arounds see a character outside the run, never a hex digit,
# as they would in the whole text.
_HEX_RUNS = re.compile(r"[0-9A-Fa-f :]{20,}")

# Cyrillic and Greek letters that look like Latin ones.
CONFUSABLES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
    "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ո": "n", "ν": "v", "ο": "o", "α": "a", "ρ": "p", "τ": "t",
    "ι": "i", "κ": "k", "η": "n", "υ": "u", "ѡ": "w", "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M",
    "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Α": "A",
    "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
    "Τ": "T", "Υ": "Y", "Χ": "X",
})
# Any look-alike letter (every one `CONFUSABLES` maps changes): one search instead of translating the text (7x
# cheaper than the translation, which only the texts that hold one need).
_CONFUSABLE = re.compile("[" + "".join(sorted(chr(c) for c in CONFUSABLES)) + "]")
_UP_TO_LAST_CONFUSABLE = re.compile("(?s).*" + _CONFUSABLE.pattern)  # greedy: ends after the last look-alike
# Any character `normalize` drops (tag, bidi and invisible characters).
_DROPPED = re.compile("[" + "".join(p.pattern.rstrip("+")[1:-1] for p in (TAGS, BIDI, INVISIBLE)) + "]")
# Any character `_unicode_signals` reacts to other than through NFKC: tag, bidi, invisible and look-alike characters.
# A text without one, already in NFKC, has no Unicode signal: one search and a quick NFKC check instead of six searches
# and a normalization (most non-ASCII texts: accented names, typographic quotes).
_UNICODE_SIGNAL_CHARS = re.compile("[" + _DROPPED.pattern[1:-1] + _CONFUSABLE.pattern[1:-1] + "]")
_LATIN = re.compile(r"[A-Za-z]")


# The words (`\w+` runs) holding a look-alike letter: at a run's start `\w*` runs to its end and backs up to its last
# look-alike, the second `\w*` runs to the end again. Every look-alike is a letter, so none matches outside a run and
# every match starts at a run's start: `(?<!\w)` tries only those (a run without a look-alike failed at each of its
# positions, each time running to its end and back: ~40% of `_mixed_script_words` on Greek text).
_CONFUSABLE_WORD = re.compile(r"(?<!\w)\w*" + _CONFUSABLE.pattern + r"\w*")


def _mixed_script_words(text: str) -> list[tuple[int, int]]:
    """The spans of the words that hold a Latin letter and a look-alike (which `CONFUSABLES` would change)."""
    if not _CONFUSABLE.search(text):  # no look-alike letter anywhere
        return []
    return [m.span() for m in _CONFUSABLE_WORD.finditer(text) if _LATIN.search(text, m.start(), m.end())]


def normalize(text: str) -> str:
    if _DROPPED.search(text):
        text = TAGS.sub("", text)
        text = INVISIBLE.sub("", BIDI.sub("", text))
    text = unicodedata.normalize("NFKC", text)
    first = _CONFUSABLE.search(text)
    if first is None:
        return text
    # only the span from the first look-alike to the last is translated: `str.translate` costs ~40 ns a
    # character outside ASCII, a look-alike word planted in a long text would pay it for the whole text
    end = _UP_TO_LAST_CONFUSABLE.match(text, first.start())
    assert end is not None
    return text[:first.start()] + text[first.start():end.end()].translate(CONFUSABLES) + text[end.end():]


def _decoded_payloads(text: str) -> list[tuple[int, int, str]]:
    """(start, end, decoded text) for base64 and hex runs that decode to readable text."""
    out = []
    for m in (m for start, end in long_tokens(text, 16) for m in BASE64.finditer(text, start, end)):
        raw = m.group()
        try:
            data = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_" if ("-" in raw or "_" in raw) else None)
        except (binascii.Error, ValueError):
            continue
        decoded = _readable(data)
        if decoded:
            out.append((m.start(), m.end(), decoded))
    # Most texts have no run of hex digits: none without `_HEX_SHAPE` (looked for in the signals' key pass), and one
    # search finds the first run in the others.
    first = None if "\\x" in text or _HEX_SHAPE not in _found(spaced(text))[1] else _HEX_RUNS.search(text)
    hex_matches = (HEX.finditer(text) if "\\x" in text else () if first is None
                   else (m for run in _HEX_RUNS.finditer(text, first.start())
                         for m in HEX.finditer(text, run.start(), run.end())))
    for m in hex_matches:
        digits = re.sub(r"\\x|[ :]", "", m.group())
        try:
            decoded = _readable(bytes.fromhex(digits))
        except ValueError:
            continue
        if decoded:
            out.append((m.start(), m.end(), decoded))
    return out


def _readable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 8 or " " not in text:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text)
    return text if printable / len(text) > 0.95 else None


# `_HEX_SHAPE` (shape 0 of the key set): 20 hex digits, spaces or colons in `keys.spaced(text)`. Every match of HEX's
# first form is ten or more pairs of hex digits, each followed by at most one space or colon: folded, it is still there,
# and its single spaces stay single spaces (at most a trailing one goes, at the text's end), so it holds this shape.
_HEX_SHAPE = 0
_KEYS = KeySet([s.keys for s in SIGNALS], shapes=("[0-9a-f :]{20}",))


@functools.lru_cache(maxsize=8)
def _found(folded: str) -> tuple[list[int], frozenset[int]]:
    """`_KEYS.found(folded)`, remembered for the last few texts: the signals and the payload decoder both ask."""
    return _KEYS.found(folded)


def _match_signals(text: str) -> list[tuple[Signal, int, int]]:
    # A signal none of whose keys is in the folded text cannot match: its pattern is skipped (most of the cost of
    # this detector; `keys.KeySet` finds the keys present in one pass).
    found = []
    folded = spaced(text)
    for i in _found(folded)[0]:
        signal = SIGNALS[i]
        if signal.also and not any(k in folded for k in signal.also):
            continue
        m = signal.pattern.search(text)
        if m:
            found.append((signal, m.start(), m.end()))
    return found


_QUOTED = re.compile(r"[\"'“‘`«][^\"'“”‘’`«»\n]{4,200}[\"'”’`»]")
_DISCUSSION = re.compile(
    r"\b(?:prompt\s+injections?|jailbreaks?|attacks?|attackers?|examples?|such\s+as|phrases?|detect(?:ion|or|s)?|"
    r"classif(?:y|ier)|red[- ]team|security|what\s+does|how\s+(?:do|does|can|would)|explain|mean(?:s|ing)?)\b",
    re.IGNORECASE,
)


_QUESTION_WORD = re.compile(
    r"^\W*(?:what|what's|whats|how|why|when|where|which|who|whose|is|are|was|were|does|do|did|can|could|should|"
    r"would|will|explain|describe)\b", re.IGNORECASE)
_SECOND_PERSON = re.compile(
    r"\b(?:you|your|yours|yourself|u|ur)\b|\babove\b|\bthis\s+(?:conversation|chat|session)\b|"
    r"\bbefore\s+(?:this|my)\b", re.IGNORECASE)
_IMPERATIVE_SENTENCE = re.compile(
    r"(?:^|[.!?\n]\s*)(?:now\s+|then\s+|please\s+|and\s+)?(?:print|show|reveal|repeat|output|tell|give|quote|copy|"
    r"paste|dump|list|write\s+out|spell\s+out|recite|reproduce|display|share|ignore|forget|disregard|act|pretend|"
    r"become)\b", re.IGNORECASE)
# Signals that a question *about* the topic can trip: "What is a system prompt?", "Why do jailbreak prompts work?"
INTERROGATIVE_DAMPENED = frozenset({"system_prompt_extraction", "jailbreak_persona", "instruction_override",
                                    "drop_safety", "jailbreak_request"})


def _sentence(text: str, start: int, end: int) -> tuple[int, int]:
    left = max(text.rfind(c, 0, start) for c in ".!?\n") + 1
    rights = [i for i in (text.find(c, end) for c in ".!?\n") if i != -1]
    return left, (min(rights) + 1 if rights else len(text))


def _generic_question(text: str, start: int, end: int) -> bool:
    """The match sits in a question that does not address the model ("What is a system prompt?", "Why do
    jailbreak prompts like DAN work?"), and no other sentence gives an order ("Print it.")."""
    left, right = _sentence(text, start, end)
    sentence = text[left:right].strip()
    if not (sentence.endswith("?") or _QUESTION_WORD.match(sentence)):
        return False
    if _SECOND_PERSON.search(sentence):
        return False
    rest = text[:left] + " . " + text[right:]
    return not _IMPERATIVE_SENTENCE.search(rest)


def _quoted_in_discussion(text: str, start: int, end: int) -> bool:
    """The match sits inside quotes in a text that talks about attacks: a mention, not a use."""
    if not _DISCUSSION.search(text):
        return False
    return any(q.start() <= start and end <= q.end() for q in _QUOTED.finditer(text))


def combine(weights: list[float]) -> float:
    """Noisy-OR of independent evidence: 1 - prod(1 - w)."""
    remaining = 1.0
    for w in weights:
        remaining *= 1.0 - w
    return 1.0 - remaining


MODEL_SIGNAL = "learned_model"
MODEL_FLOOR = 0.7  # the model reports only at or above its operating point: below it, its scores are noise


class InjectionDetector:
    detector = Detector.INJECTION

    def __init__(self, *, decode_payloads: bool = True, model: InjectionModel | None = None) -> None:
        self.decode_payloads = decode_payloads
        self.model = model

    def signals(self, text: str) -> list[tuple[str, float, int, int]]:
        """(signal, weight, start, end): each signal once, with its strongest weight and first span."""
        found: dict[str, tuple[str, float, int, int]] = {}

        def add(name: str, weight: float, start: int, end: int) -> None:
            if name not in found or found[name][1] < weight:
                found[name] = (name, weight, start, end)

        matches = _match_signals(text)
        plain = {s.name for s, _, _ in matches}
        for signal, start, end in matches:
            mention = _quoted_in_discussion(text, start, end) or (
                signal.name in INTERROGATIVE_DAMPENED and _generic_question(text, start, end))
            add(signal.name, signal.weight * (0.35 if mention else 1.0), start, end)
        if not text.isascii():  # an ASCII text is its own normal form and holds no hidden or look-alike character
            self._unicode_signals(text, plain, add)
        if self.decode_payloads:
            for start, end, decoded in _decoded_payloads(text):
                inner = _match_signals(normalize(decoded))
                if inner:
                    add("encoded_instruction", 0.9, start, end)
                    break
        return sorted(found.values(), key=lambda s: -s[1])

    @staticmethod
    def _unicode_signals(text: str, plain: set[str], add: Callable[[str, float, int, int], None]) -> None:
        """What only a non-ASCII text can hold: an instruction that appears once normalized, tag characters,
        invisible characters, bidi controls, look-alike letters inside Latin words."""
        if not _UNICODE_SIGNAL_CHARS.search(text) and unicodedata.is_normalized("NFKC", text):
            return  # `normalize` would return the text itself, and none of the searches below would find anything
        normalized = normalize(text)
        if normalized != text:
            hidden = [(s, a, b) for s, a, b in _match_signals(normalized) if s.name not in plain]
            for signal, _, _ in hidden:
                add(signal.name, signal.weight, 0, len(text))
            if hidden:
                add("obfuscated_instruction", 0.85, 0, len(text))
        tags = TAGS.search(text)
        if tags:
            add("unicode_tag_characters", 0.9, tags.start(), tags.end())
        invisible = list(INVISIBLE.finditer(text))
        if invisible:
            inside_words = sum(1 for m in invisible if 0 < m.start() < len(text) - 1
                               and text[m.start() - 1].isalnum() and text[m.end()].isalnum())
            weight = 0.5 if len(invisible) >= 3 or inside_words else 0.3
            add("invisible_characters", weight, invisible[0].start(), invisible[-1].end())
        bidi = BIDI.search(text)
        if bidi:
            add("bidi_control", 0.4, bidi.start(), bidi.end())
        mixed = _mixed_script_words(text)
        if mixed:
            add("mixed_script", 0.4 if len(mixed) > 1 else 0.25, mixed[0][0], mixed[-1][1])

    def detect(self, text: str) -> list[Hit]:
        signals = self.signals(text)
        rules = combine([w for _, w, _, _ in signals])
        learned = self.model.score(text) if self.model is not None else 0.0
        if learned < MODEL_FLOOR:
            learned = 0.0
        if not signals and not learned:
            return []
        names = [name for name, _, _, _ in signals]
        if learned:
            names.insert(0 if learned > rules else len(names), MODEL_SIGNAL)
        start, end = (signals[0][2], signals[0][3]) if signals else (0, len(text))
        return [Hit(Detector.INJECTION, "prompt_injection", start, end, round(max(rules, learned), 4), tuple(names))]
