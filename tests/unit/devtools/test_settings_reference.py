"""docs/configuration.md is the settings classes, rendered: a test fails when it is stale, and every
setting is documented and read from a variable with its service's prefix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from llmops_devtools.cli import settings_classes
from llmops_shared.settings import CommonSettings, env_name

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
PREFIXES = {"Ingest API": "LLMOPS_INGEST_", "Guardrails worker and API": "LLMOPS_GUARDRAILS_",
            "Notifier": "LLMOPS_NOTIFIER_", "Billing worker and API": "LLMOPS_BILLING_",
            "Evaluator worker, API and CLI": "LLMOPS_EVALUATOR_", "Traces worker, API and CLI": "LLMOPS_TRACES_",
            "Monitors worker and API": "LLMOPS_MONITORS_",
            "Prompts API and CLI": "LLMOPS_PROMPTS_", "Console": "LLMOPS_CONSOLE_",
            "Retention (`llmops retention`)": "LLMOPS_RETENTION_"}
# Variables two processes of one service read with one meaning, through one field declaration: the channel
# keys, with which the guardrails API seals channels and the notifier opens them.
SHARED_IN_SERVICE = {"LLMOPS_GUARDRAILS_CHANNEL_KEYS": {"GuardrailsSettings", "NotifierSettings"}}


def test_the_configuration_page_is_in_step_with_the_settings_classes() -> None:
    # Rendered in a process without the test session's topic prefix: the page shows the real defaults.
    env = {k: v for k, v in os.environ.items() if k != "LLMOPS_TOPIC_PREFIX"}
    render = ("from llmops_devtools.cli import settings_classes\n"
              "from llmops_shared.settings import reference_markdown\n"
              "print(reference_markdown(settings_classes()), end='')")
    page = subprocess.run([sys.executable, "-c", render], env=env, capture_output=True, text=True, check=True).stdout
    assert DOC.read_text() == page, (
        "docs/configuration.md is stale: run `llmops settings-reference > docs/configuration.md`")


def test_every_setting_has_a_description_and_its_service_prefix() -> None:
    for title, cls in settings_classes():
        for name, info in cls.model_fields.items():
            assert info.description, f"{cls.__name__}.{name} has no docstring"
            if name in CommonSettings.model_fields:
                assert env_name(cls, name) == f"LLMOPS_{name.upper()}"
            elif cls.__name__ not in SHARED_IN_SERVICE.get(env_name(cls, name), set()):
                assert env_name(cls, name).startswith(PREFIXES[title]), (cls.__name__, name)


def test_one_variable_never_means_two_things_to_two_services() -> None:
    seen: dict[str, str] = {}
    for _title, cls in settings_classes()[1:]:
        for name in cls.model_fields:
            if name in CommonSettings.model_fields:
                continue
            variable = env_name(cls, name)
            if variable in seen and {seen[variable], cls.__name__} <= SHARED_IN_SERVICE.get(variable, set()):
                continue
            assert variable not in seen, f"{variable}: {seen.get(variable)} and {cls.__name__}"
            seen[variable] = cls.__name__
