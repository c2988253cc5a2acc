from __future__ import annotations

import re

from llmops_guardrails.detectors.keys import KeySet, fold, longest_token, spaced

ASCII = "".join(chr(c) for c in range(0x80))


def _ignorecase_equivalents() -> dict[str, set[str]]:
    """Every non-ASCII character that some ASCII character of a pattern matches under `re.IGNORECASE`, with those
    ASCII characters (found by asking `re` itself, over every code point)."""
    everything = "".join(chr(c) for c in range(0x80, 0x110000) if not 0xD800 <= c < 0xE000)
    any_ascii = re.compile("[" + re.escape(ASCII) + "]", re.IGNORECASE)
    return {ch: {a for a in ASCII if re.fullmatch(re.escape(a), ch, re.IGNORECASE)}
            for ch in set(any_ascii.findall(everything))}


def test_fold_turns_every_character_an_ascii_one_matches_case_insensitively_into_it() -> None:
    equivalents = _ignorecase_equivalents()
    assert {ord(c) for c in equivalents} == {0x130, 0x131, 0x17F, 0x212A}  # what `fold` was written for
    for ch, letters in equivalents.items():
        (lower,) = {a.lower() for a in letters}
        assert fold(f"x{ch}y\u00e9") == f"x{lower}y\u00e9"  # in a non-ASCII text, with its neighbours in place
    for a in ASCII:
        assert fold(a) == a.lower()


def test_a_key_is_found_in_a_folded_text_that_lower_would_hide_it_in() -> None:
    keys = KeySet([("ignor",), ("sk-",), ("token",)])
    text = "\u0130GNORE the a\u017fk-ing TO\u212aEN"  # dotted capital I, long s, Kelvin sign
    assert "ignor" not in text.lower()  # lower() gives "i" and a combining dot
    assert keys.rules(fold(text)) == [0, 1, 2]


def test_every_key_present_is_reported_even_inside_or_across_another() -> None:
    # A left-to-right alternation that resumes after each match would see "ignore" and miss the other two.
    keys = KeySet([("ignore",), ("gno",), ("remo",), ("xyz",), ()])
    assert keys.rules("ignoremore") == [0, 1, 2, 4]


def test_rules_without_keys_always_run_and_the_order_is_the_rules_order() -> None:
    keys = KeySet([("b",), (), ("a", "b"), ()])
    assert keys.rules("nothing here") == [1, 3]
    assert keys.rules("") == [1, 3]
    assert keys.rules("b") == [0, 1, 2, 3]
    assert keys.rules("a") == [1, 2, 3]


def test_keys_are_literal_text_not_patterns() -> None:
    keys = KeySet([("a.b",), ("<|",), ("inst]",), ("sk-",)])
    assert keys.rules("axb <| [/inst] sk") == [1, 2]
    assert keys.rules("a.b sk-x") == [0, 3]


def test_longest_token_is_the_longest_run_without_whitespace() -> None:
    assert longest_token("") == 0
    assert longest_token("   ") == 0
    assert longest_token("ab cde\tf\ng") == 3
    assert longest_token("abcd\u2003efghij") == 6  # any Unicode space separates
    assert longest_token("x" * 16) == 16


def test_spaced_makes_every_run_of_what_re_calls_whitespace_one_space() -> None:
    """Keys with spaces stand for `\\s+` of a `re` pattern: `\\s` (a `str` pattern's) and `str.isspace` (what
    `split` splits at) agree on every code point, and `fold` turns no character into whitespace or out of it."""
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    spaces = "".join(re.findall(r"\s", everything))
    assert spaces == "".join(c for c in everything if c.isspace())
    assert "".join(c for c in fold(everything) if c.isspace()) == spaces
    assert spaced("Act\t \u00a0AS\n\nIF  ") == "act as if"
    assert spaced("  x\u3000\u2028y ") == "x y"
    keys = KeySet([("act as if",), ("as",), ("if x",)])
    assert keys.rules(spaced("ACT\r\nas\u2003if")) == [0, 1]
