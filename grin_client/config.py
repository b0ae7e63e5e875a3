"""Where the client finds the service: `GRIN_URL` / `GRIN_API_KEY`, else `~/.config/grin/config.toml`.

    # ~/.config/grin/config.toml  ($XDG_CONFIG_HOME/grin/config.toml; GRIN_CONFIG names another file)
    url = "http://127.0.0.1:8000"
    api_key = "grin_0123456789ab_..."

The environment wins over the file, explicit arguments over both.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"


class ConfigError(Exception):
    """The config file exists but cannot be used."""


@dataclass(frozen=True)
class ClientConfig:
    url: str = DEFAULT_URL
    api_key: str | None = None
    source: str = "defaults"


def config_path() -> Path:
    explicit = os.environ.get("GRIN_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "grin" / "config.toml"


def load_config(url: str | None = None, api_key: str | None = None) -> ClientConfig:
    file_values: dict[str, object] = {}
    path = config_path()
    if path.is_file():
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
    sources = []
    resolved_url = url or os.environ.get("GRIN_URL") or file_values.get("url")
    resolved_key = api_key or os.environ.get("GRIN_API_KEY") or file_values.get("api_key")
    if file_values:
        sources.append(str(path))
    if os.environ.get("GRIN_URL") or os.environ.get("GRIN_API_KEY"):
        sources.append("environment")
    if resolved_url is not None and not isinstance(resolved_url, str):
        raise ConfigError(f"{path}: url must be a string")
    if resolved_key is not None and not isinstance(resolved_key, str):
        raise ConfigError(f"{path}: api_key must be a string")
    return ClientConfig(url=(resolved_url or DEFAULT_URL).rstrip("/"), api_key=resolved_key or None,
                        source=", ".join(sources) or "defaults")
