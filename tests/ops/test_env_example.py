"""``.env.example`` documents every setting, and nothing that is not one."""

from __future__ import annotations

import re
from pathlib import Path

from core.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_ONLY = {"NEWSMON_IMAGE", "NEWSMON_HOST_PORT", "NEWSMON_CONFIG"}


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#\s*(NEWSMON_[A-Z0-9_]+)=", text, flags=re.M))
    settings = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    assert settings - documented == set(), "undocumented settings"
    assert documented - settings - COMPOSE_ONLY == set(), "documented settings that do not exist"
