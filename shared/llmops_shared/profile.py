"""Where `llmops alerts` and `llmops usage` find the APIs and the key: the environment, then a profile file.

    # ~/.config/llmops/profile.toml   (or $XDG_CONFIG_HOME/llmops/profile.toml, or $LLMOPS_PROFILE_FILE)
    [default]
    api_key = "llmops_..."                      # alerts:read, alerts:write, billing:read
    guardrails_url = "http://127.0.0.1:8081"
    billing_url = "http://127.0.0.1:8083"

    [prod]                                      # `--profile prod` or LLMOPS_PROFILE=prod
    guardrails_url = "https://guardrails.example.com"
    ...

`LLMOPS_API_KEY`, `LLMOPS_GUARDRAILS_URL` and `LLMOPS_BILLING_URL` win over the file. A key is never an
option on the command line (it would land in the shell's history and `ps`), and a profile file that
holds a key must not be readable by other users (mode 0600), as ssh insists for its keys.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llmops_shared.terminal import USAGE, CliError

DEFAULT_URLS = {"guardrails": "http://127.0.0.1:8081", "billing": "http://127.0.0.1:8083"}
FIELDS = ("api_key", "guardrails_url", "billing_url")


@dataclass(frozen=True)
class Profile:
    name: str
    api_key: str | None
    urls: Mapping[str, str]
    source: str  # where the key came from, for error messages

    def url(self, service: str) -> str:
        return self.urls[service].rstrip("/")


def profile_path(env: Mapping[str, str]) -> Path:
    if env.get("LLMOPS_PROFILE_FILE"):
        return Path(env["LLMOPS_PROFILE_FILE"])
    config = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return config / "llmops" / "profile.toml"


def load_profile(name: str | None = None, env: Mapping[str, str] | None = None) -> Profile:
    """The profile `name` (else `LLMOPS_PROFILE`, else `default`) with the environment on top."""
    env = os.environ if env is None else env
    name = name or env.get("LLMOPS_PROFILE") or "default"
    path = profile_path(env)
    section: Mapping[str, object] = {}
    if path.is_file():
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CliError(f"the profile file {path} is not valid TOML: {exc}", fix="correct it", code=USAGE) from exc
        found = document.get(name)
        if found is None and name != "default":
            raise CliError(f"no profile [{name}] in {path}", fix=f"add a [{name}] section or pick another profile",
                           code=USAGE)
        section = found if isinstance(found, dict) else {}
        unknown = sorted(set(section) - set(FIELDS))
        if unknown:
            raise CliError(f"{path} [{name}]: unknown field(s) {', '.join(unknown)}",
                           fix=f"the fields are {', '.join(FIELDS)}", code=USAGE)
        if "api_key" in section and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CliError(f"{path} holds an API key and other users can read it", fix=f"chmod 600 {path}",
                           code=USAGE)
    elif name != "default":
        raise CliError(f"no profile file {path} for the profile {name!r}",
                       fix="create it (docs/cli.md) or set LLMOPS_PROFILE_FILE", code=USAGE)
    urls = {service: str(env.get(f"LLMOPS_{service.upper()}_URL") or section.get(f"{service}_url") or default)
            for service, default in DEFAULT_URLS.items()}
    key = env.get("LLMOPS_API_KEY") or section.get("api_key")
    source = "LLMOPS_API_KEY" if env.get("LLMOPS_API_KEY") else f"api_key in {path} [{name}]"
    return Profile(name, str(key) if key else None, urls, source)
