"""Settings layers and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.config import AppSettings, WorkerSettings, build, read_file_settings
from conveyor.errors import ConfigurationError


def test_flags_beat_env_beat_file_beat_defaults() -> None:
    file = {"prefetch": 3, "queues": "fromfile", "poll_interval": 0.5}
    env = {"CONVEYOR_PREFETCH": "5", "CONVEYOR_QUEUES": "fromenv"}
    settings = build(WorkerSettings, flags={"prefetch": 7, "queues": None}, env=env, file=file)
    assert settings.prefetch == 7
    assert settings.queues == "fromenv"
    assert settings.poll_interval == 0.5
    assert settings.lease_seconds == 30.0


def test_env_values_are_typed_and_bad_ones_named() -> None:
    assert build(WorkerSettings, env={"CONVEYOR_BURST": "yes"}).burst is True
    with pytest.raises(ConfigurationError, match=r"prefetch .*CONVEYOR_PREFETCH.*expected int"):
        build(WorkerSettings, env={"CONVEYOR_PREFETCH": "many"})


def test_invariants_are_checked_up_front() -> None:
    with pytest.raises(ConfigurationError, match="quarter of lease_seconds"):
        WorkerSettings(lease_seconds=10, heartbeat_interval=5)
    with pytest.raises(ConfigurationError, match="rescue_interval"):
        WorkerSettings(lease_seconds=10, heartbeat_interval=1, rescue_interval=20)
    with pytest.raises(ConfigurationError, match="prefetch"):
        WorkerSettings(prefetch=0)
    with pytest.raises(ConfigurationError, match="log_format"):
        AppSettings(log_format="xml")


def test_file_settings_from_conveyor_toml_or_pyproject(tmp_path: Path) -> None:
    assert read_file_settings(tmp_path) == {}
    (tmp_path / "pyproject.toml").write_text('[tool.conveyor]\nstore = "memory://"\n')
    assert read_file_settings(tmp_path) == {"store": "memory://"}
    (tmp_path / "conveyor.toml").write_text('store = "sqlite:///x.db"\n')
    assert read_file_settings(tmp_path) == {"store": "sqlite:///x.db"}
    (tmp_path / "conveyor.toml").write_text("store = [unclosed\n")
    with pytest.raises(ConfigurationError, match="cannot read settings"):
        read_file_settings(tmp_path)
