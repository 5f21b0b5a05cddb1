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


# --- issue 9: one precedence rule, known keys, durations --------------------------------------
def test_environment_beats_code_beats_file() -> None:
    file = {"store": "sqlite:///file.db", "log_level": "DEBUG"}
    code = {"store": "sqlite:///code.db"}
    assert build(AppSettings, env={}, code=code, file=file).store == "sqlite:///code.db"
    assert build(AppSettings, env={}, file=file).store == "sqlite:///file.db"
    env = {"CONVEYOR_STORE": "sqlite:///env.db"}
    assert build(AppSettings, env=env, code=code, file=file).store == "sqlite:///env.db"
    flags = {"store": "sqlite:///flag.db"}
    assert build(AppSettings, flags=flags, env=env, code=code).store == "sqlite:///flag.db"
    assert build(AppSettings, env={}, code=code, file=file).log_level == "DEBUG"


def test_unknown_code_setting_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown WorkerSettings setting\(s\) prefech"):
        build(WorkerSettings, env={}, code={"prefech": 2})


def test_file_keys_are_the_union_of_the_settings_classes(tmp_path: Path) -> None:
    from conveyor.config import known_file_keys

    keys = set(known_file_keys())
    assert {"app", "store", "encryption_keys", "queues", "lease_seconds", "grace"} <= keys
    (tmp_path / "conveyor.toml").write_text('app = "m:app"\nqueues = "a,b"\nstore = "memory://"\n')
    assert read_file_settings(tmp_path)["app"] == "m:app"


@pytest.mark.parametrize("table", ["conveyor.toml", "pyproject.toml"])
def test_unknown_file_key_is_refused_with_the_list(tmp_path: Path, table: str) -> None:
    text = 'lease_secs = 10\nqueues = "a"\n'
    if table == "pyproject.toml":
        text = "[tool.conveyor]\n" + text
    (tmp_path / table).write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        read_file_settings(tmp_path)
    message = str(caught.value)
    assert "unknown setting 'lease_secs'" in message
    assert "known settings: ack_flush_interval, app, " in message
    assert "lease_seconds" in message


@pytest.mark.parametrize(
    ("value", "seconds"), [("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("45", 45.0), (60, 60.0)]
)
def test_duration_settings_take_units_from_env_file_and_code(value: object, seconds: float) -> None:
    from_env = build(WorkerSettings, env={"CONVEYOR_GRACE": str(value)})
    from_file = build(WorkerSettings, env={}, file={"grace": value})
    from_code = build(WorkerSettings, env={}, code={"grace": value})  # app.worker(grace="5m")
    assert from_env.grace == from_file.grace == from_code.grace == seconds


def test_bad_duration_names_the_setting_and_the_forms() -> None:
    with pytest.raises(ConfigurationError) as caught:
        build(WorkerSettings, env={"CONVEYOR_LEASE_SECONDS": "half a minute"})
    message = str(caught.value)
    assert "lease_seconds (from CONVEYOR_LEASE_SECONDS)" in message
    assert "90s" in message and "2h" in message


def test_a_bad_code_value_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match=r"lease_seconds \(from code\)"):
        build(WorkerSettings, env={}, code={"lease_seconds": "half a minute"})
