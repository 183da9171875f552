"""Settings are read once from the environment, with defaults that are safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from changegate.settings import Role, Settings


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env(Role.CONTROLLER, env={})
    assert settings.role is Role.CONTROLLER
    assert settings.namespace == "changegate-system"
    assert settings.change_manager_groups == ("change-managers",)
    assert settings.webhook_cert_file is None


def test_environment_overrides_and_group_lists_are_split() -> None:
    settings = Settings.from_env(
        Role.WEBHOOK,
        env={
            "CHANGEGATE_NAMESPACE": "ops",
            "CHANGEGATE_WEBHOOK_PORT": "8443",
            "CHANGEGATE_WEBHOOK_CERT_FILE": "/certs/tls.crt",
            "CHANGEGATE_CHANGE_MANAGER_GROUPS": " cab , change-managers,,",
        },
    )
    assert settings.namespace == "ops"
    assert settings.webhook_port == 8443
    assert settings.webhook_cert_file == Path("/certs/tls.crt")
    assert settings.change_manager_groups == ("cab", "change-managers")


def test_a_bad_port_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        Settings.from_env(Role.WEBHOOK, env={"CHANGEGATE_WEBHOOK_PORT": "https"})
