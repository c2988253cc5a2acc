"""People: cues the NER model misses (`PersonRecognizer`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import TypeAlias

import regex

from llmops_guardrails.detectors.pii import cues
from llmops_guardrails.detectors.pii.classes import plain
from llmops_guardrails.detectors.pii.lexicon import (
    BULLET,
    NAME_WORD,
    NOT_ALONE,
    OPENERS,
    ORG_WORD_RE,
    UNIT_OR_STREET,
    org_word,
    street_word,
    words,
)
from llmops_guardrails.detectors.pii.names import common_words, first_names, surnames
from llmops_guardrails.detectors.pii.patterns import ScanningRecognizer
from llmops_guardrails.detectors.pii.places import add_span, gazetteer, towns
from llmops_guardrails.detectors.pii.results import Span

Match: TypeAlias = "re.Match[str] | regex.Match[str]"  # a match of a `regex` pattern, or of its `re` stand-in

_PARTICLE = r"(?:van|von|de|der|den|da|di|del|della|dos|das|du|la|le|bin|al|el|ibn|ter|ten|zu)"
_PERSON_NAME = (rf"{NAME_WORD}(?:[ ](?:\p{{Lu}}\.?[ ])?(?:{_PARTICLE}[ ]){{0,2}}{NAME_WORD}){{0,2}}")
_LOWER_WORD = r"\p{Ll}[\p{Ll}\p{M}'’-]*\p{Ll}"
_CONTACT_NAME = regex.compile(
    rf"^(?:{NAME_WORD}|\p{{Lu}}\.?)(?:[ ]{{1,2}}(?:{NAME_WORD}|\p{{Lu}}\.?|{_PARTICLE})){{1,4}}$")
_CONTACT_NAME_LOWER = regex.compile(rf"^{_LOWER_WORD}(?:[ ](?:{_LOWER_WORD}|\p{{Ll}}\.?)){{1,3}}$")
_ROLE_WORD = regex.compile(
    r"(?i)\b(?:team|support|service|services|department|dept|sales|office|desk|center|centre|help|helpdesk|customer|"
    r"customers|billing|accounts|admin|administrator|manager|director|engineer|officer|assistant|reception|"
    r"operations|marketing|finance|hr|legal|info|contact|hello|dear|regards|thanks|personal|profile|resume|cv)\b")
_LABEL = regex.compile(r"(?i)(?:billing|shipping|mailing|postal|home|delivery)?\s*(?:address|name|to|attn|"
                       r"attention|contact|recipient|ship\s+to|bill\s+to)\s*:\s*")
_SENTENCE_START = r"(?:^|(?<=[.!?]\s{1,3})|(?<=\n\s{0,8}))"
_SUBJECT_VERB = (r"(?=\s+(?:lives|lived|had\s+given|has\s+given|gave|spent|works|"
                 r"worked|said|says|told|asked|wrote|replied|is\s+from|was\s+from|moved|married|emailed|texted|called\s+me|"
                 r"and\s+I\b|is\s+(?:a\s+)?(?:very|my|our|so)\b|was\s+(?:a\s+)?(?:very|my|our)\b))")
_SUBJECT = regex.compile(rf"{_SENTENCE_START}(?P<name>{_PERSON_NAME}){_SUBJECT_VERB}")
_SPEECH = regex.compile(
    rf"\b(?:said|says|asked|replied|answered|told|wrote|explained|added|shouted|whispered|according\s+to)\s+"
    rf"(?P<name>{_PERSON_NAME})(?:\s+to\s+(?P<other>{_PERSON_NAME}))?")
_SPEAKER = regex.compile(rf"(?m)^[ \t]*(?P<name>{NAME_WORD}(?:[ ]{NAME_WORD})?)[ \t]*:[ \t]*[\"“]")
_VOCATIVE_END = (r",\s+(?=(?i:can|could|would|will|please|are|do|did|have|i|you|"
                 r"thank|thanks|we|let|how|what|where|when|why|is|it|this)\b)")
_VOCATIVE = regex.compile(rf"{_SENTENCE_START}(?P<name>{_PERSON_NAME}){_VOCATIVE_END}")
# Both in one search: a name at a sentence's start, then the subject's verb (group "subject", empty) or the vocative's
# comma. The two never match at one place (after the same name words a verb follows, or a comma: a name goes on only
# with a capital, an initial or a particle, none of which a verb is), nor does one match start inside a match of the
# other (inside a name there is no comma, and after one a verb stops it), so the matches of this search are those of
# the two, in order (`sentence_names`).
_SUBJECT_OR_VOCATIVE = regex.compile(
    rf"{_SENTENCE_START}(?P<name>{_PERSON_NAME})(?:(?P<subject>{_SUBJECT_VERB})|{_VOCATIVE_END})")


# ASCII texts (most chat traffic) are searched with the standard library's `re` instead: twice as fast as `regex`
# when a pattern starts with a class (`re` skips to the characters of that class, here the capitals, and tries the
# pattern only there). On ASCII text `\p{Lu}` is [A-Z], `\p{L}` and `[\p{L}\p{M}]` are [A-Za-z], `\p{N}` is
# [0-9], `\s` is `_ASCII_SPACE` (`re`'s `\s` also takes U+001C-U+001F, `regex`'s does not), `\b` agrees, and
# U+2019 is not there. `re` has no variable-width look-behinds: a pattern's look-behind is read after its first
# character (a capital), or checked in Python (`capitalised_words`). `tests/unit/guardrails/detectors/pii/
# test_ascii_passes.py` compares each with its `regex` pattern.
_ASCII_SPACE = r"[\t\n\x0b\x0c\r ]"
_ASCII_NAME_WORD = r"[A-Z][A-Za-z'-]*[A-Za-z]"  # `NAME_WORD`
_ASCII_NAME_REST = r"[A-Za-z'-]*[A-Za-z]"  # a name word after its capital
_ASCII_PERSON_NAME_REST = (rf"{_ASCII_NAME_REST}"  # `_PERSON_NAME` after its capital
                           rf"(?:[ ](?:[A-Z]\.?[ ])?(?:{_PARTICLE}[ ]){{0,2}}{_ASCII_NAME_WORD}){{0,2}}")
# Where a match of `_SUBJECT_OR_VOCATIVE` can start, read in `classes.plain(text)` (the text itself when ASCII, else
# its characters' ASCII stand-ins): every place such a match starts is a place this finds (each start reported: the
# name is a look-ahead). The stand-ins make each class of the pattern a class at least as wide: a capital is "A", a
# letter or mark a letter, whitespace (`\s`) whitespace, ".!?" and "\n" themselves; a space of the pattern (U+0020)
# is found among all whitespace, a particle among other letters as well; the verbs' `\b` and the vocative's word
# are left out (a comma and whitespace suffice). So it finds more than the matches' starts, never fewer; the pattern
# itself is tried only there (`cues.matches`).
_PLAIN_NAME_AND_CUE = (rf"(?=[A-Z]{_ASCII_PERSON_NAME_REST}"
                       rf"(?:{_SUBJECT_VERB.replace(chr(92) + 's', _ASCII_SPACE).replace(chr(92) + 'b', '')}|"
                       rf",{_ASCII_SPACE}+))")
# (read from the sentence's end or line break, a class `re` skips to; the name's place is the match's end)
_PLAIN_SENTENCE_NAME_START = re.compile(
    rf"[.!?\n](?:(?<=[.!?]){_ASCII_SPACE}{{1,3}}|(?<=\n){_ASCII_SPACE}{{0,8}}){_PLAIN_NAME_AND_CUE}")
_PLAIN_TEXT_NAME_START = re.compile(_PLAIN_NAME_AND_CUE)  # (at the text's start)


def sentence_names(text: str) -> tuple[list[regex.Match[str]], list[regex.Match[str]]]:
    """The matches of `_SUBJECT` and of `_VOCATIVE` in `text`, in order: one search (`_SUBJECT_OR_VOCATIVE`), tried
    only where `_PLAIN_SENTENCE_NAME_START` or, at the text's start, `_PLAIN_TEXT_NAME_START` finds a name in
    `classes.plain(text)`."""
    subjects: list[regex.Match[str]] = []
    vocatives: list[regex.Match[str]] = []
    read = plain(text)
    starts = [0] if _PLAIN_TEXT_NAME_START.match(read) else []
    for m in _PLAIN_SENTENCE_NAME_START.finditer(read):
        if not starts or m.end() > starts[-1]:  # (several sentence ends may lead to one name)
            starts.append(m.end())
    for m in cues.matches(_SUBJECT_OR_VOCATIVE, text, starts):
        (subjects if m.start("subject") >= 0 else vocatives).append(m)
    return subjects, vocatives


def speaker_labels(text: str) -> Iterator[regex.Match[str]]:
    """`_SPEAKER.finditer(text)`, the pattern tried only where a match can start (`cues.matches`): at the start of
    each line (`(?m)^`: the text's start and after each "\n") that holds a colon (the label's, on its line)."""
    starts = []
    at = 0
    for line in text.split("\n"):
        if ":" in line:
            starts.append(at)
        at += len(line) + 1
    return cues.matches(_SPEAKER, text, starts)


_POSSESSIVE_NAME = regex.compile(rf"\b(?P<name>{NAME_WORD}[ ]{NAME_WORD})['’]s\b")
_APOSTROPHE_S = re.compile("['’]s")
_CAPITALS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")  # `classes.plain`'s stand-ins of the capitals (`\p{Lu}`)


def possessive_names(text: str) -> Iterator[regex.Match[str]]:
    """`_POSSESSIVE_NAME.finditer(text)`, the pattern tried only where a match can start (`cues.matches`).

    A match is two name words one space apart and an apostrophe and "s" right after the second: it ends at an "'s"
    (or with U+2019) of the text, its second word is what lies between the last space before that and it, and its first
    word lies after the space before that one (a name word holds no space). So it starts at a capital (a stand-in
    "A"-"Z" of `classes.plain`: `\\p{Lu}`) after the second-to-last space before an "'s", and before the "'s"; a text
    without an "'s" has no match."""
    read = None
    starts: list[int] = []
    for q in _APOSTROPHE_S.finditer(text):
        at = q.start()
        space = text.rfind(" ", 0, at)  # between the two words
        if space < 0:
            continue
        if read is None:
            read = plain(text)
        low = max(text.rfind(" ", 0, space) + 1, starts[-1] + 1 if starts else 0)
        starts.extend(i for i in range(low, at) if read[i] in _CAPITALS)
    return cues.matches(_POSSESSIVE_NAME, text, starts)


_DETERMINERS = frozenset({"The", "A", "An", "This", "That", "These", "Those", "My", "Your", "His", "Her", "Our",
                          "Their", "Its", "Some", "Any", "Every", "Each", "No"})
_NOT_A_NAME = frozenset({
    "The", "A", "An", "This", "That", "These", "Those", "It", "I", "We", "You", "He", "She", "They", "Not", "Sorry",
    "Thanks", "Thank", "Please", "Yes", "No", "Ok", "OK", "Okay", "There", "Here", "All", "Sure", "Just", "So",
    "Well", "Good", "Great", "Fine", "Happy", "Glad", "Going", "Hi", "Hello", "Hey", "Dear", "Sir", "Madam",
    "Also", "Now", "Then", "Anyway", "However", "Actually", "Honestly", "Maybe", "Perhaps", "Everyone", "Someone",
    "Nobody", "Somebody", "Everybody", "User", "Bot", "Assistant", "System", "Human", "AI", "Customer", "Agent",
    "Q", "Note", "Where", "When", "What", "Who", "Why", "How", "Which", "Phone", "Email", "E-mail", "Address",
    "Website", "Name", "My", "Your", "His", "Her", "Our", "Their", "Mr", "Mrs", "Ms", "Dr", "Today", "Tomorrow",
    "Yesterday", "Personal", "Info", "Subject", "Re", "Fwd", "Answer", "Question", "Response", "Reply", "Output",
    "Input", "Example", "Error", "Warning", "Update", "Summary", "Title", "Date", "Time", "Step", "Tip",
})



# Words that open a sentence followed by a comma ("Perfect, can you ...") without being a name.
_INTERJECTIONS = frozenset(words("""
absolutely afterwards agreed ah alright anyway awesome basically besides cheers cool correct definitely done
exactly excellent fine great hmm interesting later listen look nice nope noted oh ok okay otherwise perfect
quick right second seriously sure third understood wait well wow yeah yep
"""))
# First words of capitalised phrases with a possessive that are not names ("New Year's", "Black Friday's").
_NOT_NAME_ADJECTIVES = frozenset(words("""
New Old Black White Good Great Big Little Saint St National International United Royal Christmas Easter
Valentine Halloween Mother Father Independence Labor Labour Memorial Thanksgiving
"""))


class PersonRecognizer(ScanningRecognizer):
    """PERSON from cues the small NER model often misses; each span must look like a name (capitalised words,
    initials, particles such as "van der") and not start with a common word ("The", "Thanks", "User").

    - the name line of a contact block: the first line of a text of three or more lines, one of them with
      digits (an address or phone number), consisting of two to five name words (after a bullet or a label
      such as "Billing address:"), 0.88;
    - a speaker label before a quote (`Anna: "Who are you?"`), 0.9;
    - after a speech verb ("said Anna", "said Anna to Ben"), 0.9;
    - a sentence subject followed by a verb that takes a person ("Anna lives at", "Anna had given",
      "Anna is from"), 0.9;
    - a name addressed at the start of a sentence ("Anna, can I ..."), 0.88;
    - two name words with a possessive ("Anna Berg's"), 0.6.
    """

    ENTITY = "PERSON"
    def _scan(self, text: str, whys: list[str] | None) -> list[Span]:
        """The matches (`whys`: their explanations, when asked for), in the order `analyze` gave them."""
        name = type(self).__name__
        out: list[Span] = []

        def add(span: tuple[int, int], score: float, why: str) -> None:
            start, end = span
            words = text[start:end].split(" ")
            if words[0] in _DETERMINERS:  # "wrote The Call of the Wild": a title, not a name
                return
            while words and words[0] in _NOT_A_NAME:
                start += len(words.pop(0)) + 1
            if words and not ORG_WORD_RE.search(text, start, end):
                add_span(out, whys, name, self.ENTITY, (start, end), score=score, why=why)

        if "\n" in text:
            span = self._contact_name(text)
            if span:
                add(span, 0.88, "name line of a contact block")
        if ":" in text and ('"' in text or "“" in text):  # (a speaker label is a colon and a quote)
            for m in speaker_labels(text):  # `_SPEAKER.finditer(text)`
                add(m.span("name"), 0.9, "speaker label")
        for m in cues.matches(_SPEECH, text, cues.starts(text).speech):  # `_SPEECH.finditer(text)`
            add(m.span("name"), 0.9, "after a speech verb")
            if m.group("other"):
                add(m.span("other"), 0.9, "after a speech verb")
        subjects, vocatives = sentence_names(text)
        for m in subjects:  # `_SUBJECT.finditer(text)`
            add(m.span("name"), 0.9, "subject of a verb that takes a person")
        for m in vocatives:  # `_VOCATIVE.finditer(text)`
            first = m.group("name").split(" ")[0]
            if first.lower() not in _INTERJECTIONS and first.lower() not in OPENERS and not first.endswith("ly"):
                add(m.span("name"), 0.88, "addressed by name")
        for m in possessive_names(text):  # `_POSSESSIVE_NAME.finditer(text)`
            if m.group("name").split(" ")[0] not in _NOT_NAME_ADJECTIVES:
                add(m.span("name"), 0.6, "name with a possessive")
        return out

    @staticmethod
    def _contact_name(text: str) -> tuple[int, int] | None:
        # the first line that holds more than whitespace (`LINE.finditer(text)`'s, read by `str.split`), and whether
        # two more follow; a digit on a later such line is a digit anywhere after the first (the others are blank)
        lines, first_start, first_end, at = 0, 0, 0, 0
        for line in text.split("\n"):
            if line.strip():
                lines += 1
                if lines == 1:
                    first_start, first_end = at, at + len(line)
                elif lines == 3:
                    break
            at += len(line) + 1
        if lines < 3 or not any(map(str.isdigit, text[first_end:])):
            return None
        bullet = BULLET.match(text[first_start:first_end])
        start = first_start + (bullet.end() if bullet else 0)
        label = _LABEL.match(text, start, first_end)
        if label:
            start = label.end()
        end = first_end
        while end > start and text[end - 1].isspace():
            end -= 1
        value = text[start:end]
        lowercase_text = not any(c.isupper() for c in text)
        pattern = _CONTACT_NAME_LOWER if lowercase_text else _CONTACT_NAME
        if not pattern.match(value) or value.split(" ")[0] in _NOT_A_NAME or ORG_WORD_RE.search(value):
            return None
        if UNIT_OR_STREET.search(value) or _ROLE_WORD.search(value) or gazetteer().get(" ".join(value.split())):
            return None
        return start, end


# A run of capitalised name words, initials ("D.", "G") and particles ("van der"), one space apart.
_NAME_RUN = regex.compile(
    rf"(?<![\p{{L}}\p{{M}}\p{{N}}_'’.-]){NAME_WORD}"
    rf"(?:[ ](?:{NAME_WORD}|\p{{Lu}}\.?(?=[ ])|{_PARTICLE}(?=[ ]\p{{Lu}})))+")
# the same in `re` for `classes.plain(text)` (the text itself when ASCII), the look-behind read after the capital
# (see `_ASCII_SPACE`; "\x01" is the stand-in of a number that is not a digit, `\p{N}` with the digits)
_ASCII_NAME_RUN = re.compile(
    rf"[A-Z](?<![A-Za-z0-9_'.\x01-][A-Z]){_ASCII_NAME_REST}"
    rf"(?:[ ](?:{_ASCII_NAME_WORD}|[A-Z]\.?(?=[ ])|{_PARTICLE}(?=[ ][A-Z])))+")


def name_runs(text: str) -> Iterator[Match]:
    """`_NAME_RUN.finditer(text)`, as spans: `_ASCII_NAME_RUN`'s matches in `classes.plain(text)` (read their words
    from `text`), unless the text holds a "\x01" of its own (`classes`)."""
    if "\x01" in text:
        return _NAME_RUN.finditer(text)
    return _ASCII_NAME_RUN.finditer(plain(text))


def run_tokens(start: int, words: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, word) of the words of a `_NAME_RUN` match at `start` (its text split on its single spaces).

    `KnownNameRecognizer` read a run's words with a pattern before (a name word, a capital with an optional dot, or
    a particle); that finds the same name words and initials, and a particle as one or two lower-case pieces ("der"
    as "de", "della" as "de" and "la"); the recognizer passes over lower-case words whatever they are, so its
    results are the same."""
    out = []
    for word in words:
        end = start + len(word)
        out.append((start, end, word))
        start = end + 1
    return out


_POSSESSIVE_END = regex.compile(r"['’]s?$")


def possessive_end(word: str) -> tuple[int, int] | None:
    """The span of `_POSSESSIVE_END.search(word)` (an apostrophe, either one, and an optional "s" at the word's end or
    before a final line break), or None: the same leftmost match, without a regex call (a few per capitalised run)."""
    n = len(word)
    for p in range(max(0, n - 3), n):
        if word[p] == "'" or word[p] == "’":
            for q in (p + 2, p + 1):  # `s?` tries the "s" first
                if q <= n and (q == p + 1 or word[p + 1] == "s") and (q == n or (q == n - 1 and word[q] == "\n")):
                    return p, q
    return None


def without_possessive(word: str) -> str:
    """`_POSSESSIVE_END.sub("", word)` (it matches at most once: a match ends at the word's end or its final line
    break, and no apostrophe follows one)."""
    span = possessive_end(word)
    return word if span is None else word[:span[0]] + word[span[1]:]
# A whole run of one to four capitalised words, one space apart: not after a letter, digit or joiner, nor after a
# capitalised word and a space, and not followed by another (nor by a letter, digit or joiner). A run of one is a
# lone word (`_LONE_WORD`, where `_first_names_alone` looks), of two to four `_CAPITALISED_RUN`'s match; a run of
# five or more matches neither. One search finds the matches of both: each of them is a match of this pattern, and
# each match of this pattern is a match of the one its number of words says (the same span: a name word here ends
# only where its letters and joiners do, since the look-ahead refuses a letter or joiner after it), in order.
_BEFORE_RUN = r"(?<![\p{L}\p{M}\p{N}_'’.-]|\p{Lu}[\p{L}\p{M}'’-]*[ ])"
_AFTER_RUN = r"(?![\p{L}\p{M}\p{N}_'’-]|[ ]\p{Lu})"
_CAPITALISED_WORDS = regex.compile(rf"{_BEFORE_RUN}{NAME_WORD}(?:[ ]{NAME_WORD}){{0,3}}{_AFTER_RUN}")
# (the two searches it stands for, which tests compare it with)
_LONE_WORD = regex.compile(rf"{_BEFORE_RUN}{NAME_WORD}{_AFTER_RUN}")
_CAPITALISED_RUN = regex.compile(rf"{_BEFORE_RUN}{NAME_WORD}(?:[ ]{NAME_WORD}){{1,3}}{_AFTER_RUN}")


# `_CAPITALISED_WORDS` in `re` for `classes.plain(text)`, but for the second half of its look-behind (a capital,
# letters or joiners and a space right before the run), which `capitalised_words` checks
_ASCII_CAPITALISED_WORDS = re.compile(
    rf"[A-Z](?<![A-Za-z0-9_'.\x01-][A-Z]){_ASCII_NAME_REST}(?:[ ]{_ASCII_NAME_WORD}){{0,3}}"
    r"(?![A-Za-z0-9_'\x01-]|[ ][A-Z])")
_ASCII_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'-")  # `[\p{L}\p{M}'’-]`


def _after_capitalised(text: str, start: int) -> bool:
    """Whether `_BEFORE_RUN`'s second half (a capital, letters or joiners, a space) ends right before `start` in
    `classes.plain(text)`: a space there, and a capital in the run of letters and joiners before it."""
    if start < 2 or text[start - 1] != " ":
        return False
    k = start - 2
    while k >= 0 and text[k] in _ASCII_WORD_CHARS:
        if "A" <= text[k] <= "Z":
            return True
        k -= 1
    return False


def capitalised_words(text: str) -> tuple[list[Match], list[Match]]:
    """The matches of `_LONE_WORD` and of `_CAPITALISED_RUN` in `text`, in order: one search (`_CAPITALISED_WORDS`).

    As spans: `_ASCII_CAPITALISED_WORDS` in `classes.plain(text)` (read the words from `text`), less the matches right
    after a capitalised word and a space, unless the text holds a "\x01" of its own (`classes`). Dropping such a match
    is what the full look-behind does at its start; and it would refuse every later start inside the match as well
    (each word of the run follows a capitalised word and a space; any other place follows a letter or joiner), so
    going on after the match, as `finditer` does, misses nothing."""
    lone: list[Match] = []
    runs: list[Match] = []
    if "\x01" not in text:
        read = plain(text)
        for m in _ASCII_CAPITALISED_WORDS.finditer(read):
            if not _after_capitalised(read, m.start()):
                (runs if " " in m.group() else lone).append(m)
        return lone, runs
    for m in _CAPITALISED_WORDS.finditer(text):
        (runs if " " in m.group() else lone).append(m)
    return lone, runs
_LOWER_PAIR = regex.compile(r"(?<![\p{L}\p{M}\p{N}_'’-])(?P<given>\p{Ll}[\p{Ll}\p{M}'’-]+)[ ]"
                            r"(?=(?P<family>\p{Ll}[\p{Ll}\p{M}'’-]+)(?![\p{L}\p{M}\p{N}_]))")
# Two name words around a middle initial ("Faina D. Yefremova", "Ravil G Yefimov"): a person, listed or not.
_INITIALLED = regex.compile(rf"(?P<first>{NAME_WORD})[ ]\p{{Lu}}\.?[ ](?P<last>{NAME_WORD})")


class KnownNameRecognizer(ScanningRecognizer):
    """PERSON: a known first name followed by a surname ("Faina D. Yefremova", "Elle Sandström").

    The first name is on Faker's lists (`names.first_names`: every locale, less common English words such as
    "Will" or "May") and is not a place of the gazetteer; after it come initials, particles and capitalised
    words, up to the last word that is neither a common word, an organisation word ("Inc", "Bank") nor a
    street or unit word. At least one such word must follow. A known surname there scores 0.89, another
    capitalised word 0.86; both beat the NER model's 0.85, which often calls a foreign name a place. A phrase
    that is itself a place ("Virginia Beach" in the gazetteer or the town list) is skipped. Two capitalised
    words around a middle initial ("Faina D. Yefremova") are a person whatever the lists say, 0.89, unless one
    of them is a common, organisation or street word. So are two capitalised words whose second is a known
    surname ("Homero Portillo" when "Homero" is not listed), 0.86, and, at 0.6 (the NER model's reading wins),
    a known first name standing alone inside a sentence ("said Gladys to Logan"), unless it is also a weekday,
    a month, a nationality or a place. In a text without capital letters: a known first name followed by a
    known surname, neither a common word ("eva kleist"), 0.86.
    """

    ENTITY = "PERSON"
    def _scan(self, text: str, whys: list[str] | None) -> list[Span]:
        """The matches (`whys`: their explanations, when asked for), in the order `analyze` gave them."""
        name = type(self).__name__
        firsts, lasts, common = first_names(), surnames(), common_words()
        places, town_list = gazetteer(), towns()
        out: list[Span] = []
        for run in name_runs(text):  # `_NAME_RUN.finditer(text)` (spans: the words are the text's)
            run_text = text[run.start():run.end()]
            words = run_text.split(" ")
            # (a name word holds no space, so a match of `_INITIALLED` is three words, the middle one a capital and
            # an optional dot)
            initialled = _INITIALLED.fullmatch(run_text) if len(words) == 3 and len(words[1]) <= 2 else None
            if initialled and not any(w.lower() in common or org_word(w) or street_word(w)
                                      for w in (initialled.group("first"), initialled.group("last"))):
                add_span(out, whys, name, self.ENTITY, run.span(), score=0.89, why="name with a middle initial",
                         rule="known_name")
                continue
            # a run holding no known first name adds nothing below (each token fails `first not in firsts`)
            tokens = run_tokens(run.start(), words) if any(w in firsts for w in words) else []
            i = 0
            while i < len(tokens):
                start, _, first = tokens[i]
                if first not in firsts or first in _NOT_A_NAME:
                    i += 1
                    continue
                place = places.get(first)
                if place is not None and not place.ambiguous:
                    i += 1
                    continue
                end, known = -1, False
                j = i + 1
                while j < len(tokens):
                    word = tokens[j][2]
                    if len(word.rstrip(".")) > 1 and not word.islower():
                        possessive = possessive_end(word)  # `_POSSESSIVE_END.search(word)`'s span
                        if possessive:
                            word = word[:possessive[0]]
                        if ((word.lower() in common and word not in lasts) or org_word(word)
                                or street_word(word)):
                            break
                        end = tokens[j][1] - (possessive[1] - possessive[0] if possessive else 0)
                        known = known or word in lasts
                        if possessive:
                            j += 1
                            break  # "Emmie Ström's Cautionary Tales": the name ends at the possessive
                    j += 1
                if end > 0:
                    phrase = text[start:end]
                    if places.get(phrase) is None and town_list.get(phrase) is None:
                        add_span(out, whys, name, self.ENTITY, (start, end), score=0.89 if known else 0.86,
                                 why="known first name and a surname", rule="known_name")
                    i = j
                else:
                    i += 1
            if len(words) == 2 and not any(run.start() <= r.start < run.end() for r in out):
                given, family = words[0], without_possessive(words[1])
                if (family in lasts and given not in firsts and not self._common(given) and not self._common(family)
                        and places.get(f"{given} {family}") is None and town_list.get(f"{given} {family}") is None):
                    add_span(out, whys, name, self.ENTITY, (run.start(), run.start() + len(given) + 1 + len(family)),
                             score=0.86, why="capitalised word and a known surname", rule="known_name")
        lone, runs = capitalised_words(text)
        out.extend(self._first_names_alone(text, out, lone, name, whys))
        out.extend(self._capitalised_runs(text, out, runs, name, whys))
        if not any(c.isupper() for c in text):
            out.extend(self._lowercase_names(text, name, whys))
        return out

    def _lowercase_names(self, text: str, name: str, whys: list[str] | None) -> list[Span]:
        """In a text without capital letters: a known first name and a known surname ("eva kleist"), 0.86."""
        firsts, lasts, common = first_names(), surnames(), common_words()
        out: list[Span] = []
        for m in _LOWER_PAIR.finditer(text):
            given, family = m.group("given"), m.group("family")
            if (given.capitalize() in firsts and family.capitalize() in lasts and given not in common
                    and family not in common and given not in NOT_ALONE and family not in NOT_ALONE):
                add_span(out, whys, name, self.ENTITY, (m.start(), m.end("family")), score=0.86,
                         why="known first name and surname, lower case", rule="known_name")
        return out

    @staticmethod
    @functools.lru_cache(maxsize=1 << 16)  # a word's answer never changes: the lists are loaded once
    def _common(word: str) -> bool:
        """A common, organisation, street or title word, or a place of the gazetteer: not part of a name here."""
        return (word.lower() in common_words() or word in _NOT_A_NAME or word.lower() in NOT_ALONE
                or org_word(word) or street_word(word)
                or gazetteer().get(word) is not None)

    def _capitalised_runs(self, text: str, found: list[Span], runs: list[Match], name: str,
                          whys: list[str] | None) -> list[Span]:
        """Two or three capitalised words (a longer run is a title or a firm), after leading common words ("Is")
        and possessives ("Consumer Reports's"),
        none a common, title, organisation or street word, not in capitals and not a place ("Is Alpatu
        Shervashidze coming?"): 0.5, below every other reading of the same words."""
        out: list[Span] = []
        for m in runs:  # `_CAPITALISED_RUN.finditer(text)`
            start = m.start()
            words = text[start:m.end()].split(" ")  # (the span's: `capitalised_words`)
            while len(words) > 1 and (possessive_end(words[0]) or self._common(words[0])):
                start += len(words.pop(0)) + 1  # "Is Alpatu Shervashidze", "Consumer Reports's Impi Nummelin"
            if not 2 <= len(words) <= 3 or any(r.start < m.end() and start < r.end for r in found):
                continue
            words = [without_possessive(w) for w in words]
            if any(w.isupper() or self._common(w) for w in words):
                continue
            phrase = " ".join(words)
            if gazetteer().get(phrase) is not None or towns().get(phrase) is not None:
                continue
            add_span(out, whys, name, self.ENTITY, (start, start + len(phrase)), score=0.5, why="capitalised words",
                     rule="capitalised_run")
        return out

    def _first_names_alone(self, text: str, found: list[Span], lone: list[Match], name: str,
                           whys: list[str] | None) -> list[Span]:
        """A known first name standing alone inside a sentence ("said Gladys to Logan"), 0.6."""
        firsts = first_names()
        out: list[Span] = []
        for m in lone:  # `_LONE_WORD.finditer(text)`
            word = text[m.start():m.end()]  # (the span's: `capitalised_words`)
            if word not in firsts or self._common(word) or any(r.start <= m.start() < r.end for r in found):
                continue
            before = text[:m.start()].rstrip(" \t\"'“‘(")
            if not before or before[-1] in ".!?:\n":
                continue  # a sentence's first word: capitalised anyway
            add_span(out, whys, name, self.ENTITY, m.span(), score=0.6, why="known first name", rule="known_name")
        return out
