"""The template renderer, the same in the API and in the SDK: placeholders, missing variables, no second pass."""

from __future__ import annotations

from typing import Any

import pytest

from llmops_prompts import assignment, template
from llmops_sdk import prompts as sdk

CASES: list[tuple[Any, dict[str, Any], Any]] = [
    ("Hi {{ name }}, {{name}}!", {"name": "Ada"}, "Hi Ada, Ada!"),
    ("{{ a }}{{b}}", {"a": 1, "b": None, "extra": "ignored"}, "1None"),
    ("{{ x.y }} {{}} {{ 1a }} {single} {{ v }}", {"v": "{{ v }}"}, "{{ x.y }} {{}} {{ 1a }} {single} {{ v }}"),
    ([{"role": "system", "content": "For {{ team }}"}, {"role": "user", "content": "{{ q }}"}],
     {"team": "ops", "q": "why?"},
     [{"role": "system", "content": "For ops"}, {"role": "user", "content": "why?"}]),
]


@pytest.mark.parametrize(("tpl", "values", "expected"), CASES)
def test_api_and_sdk_render_alike(tpl: Any, values: dict[str, Any], expected: Any) -> None:
    assert template.render(tpl, values) == expected
    assert sdk.render(tpl, values) == expected
    assert template.variables(tpl) == sdk.variables(tpl)


def test_a_missing_variable_is_an_error_naming_every_missing_one() -> None:
    for module in (template, sdk):
        with pytest.raises(ValueError, match="missing variables: question, customer") as caught:
            module.render("{{ question }} for {{ customer }} in {{ lang }}", {"lang": "en"})
        assert caught.value.names == ["question", "customer"]  # type: ignore[attr-defined]


def test_assignment_is_the_same_in_api_and_sdk_and_follows_the_weights() -> None:
    weights = [("a", 1.0), ("b", 3.0)]
    got = [assignment.assign("exp", f"user-{i}", weights, 0.2) for i in range(4_000)]
    assert got == [sdk.assign("exp", f"user-{i}", weights, 0.2) for i in range(4_000)]
    shares = {name: got.count(name) / len(got) for name in ("holdout", "a", "b")}
    assert abs(shares["holdout"] - 0.2) < 0.03 and abs(shares["a"] - 0.2) < 0.03 and abs(shares["b"] - 0.6) < 0.03
    # another experiment splits the same users independently
    other = [assignment.assign("exp-2", f"user-{i}", weights, 0.2) for i in range(4_000)]
    assert sum(x == y for x, y in zip(got, other, strict=True)) < 0.6 * len(got)
