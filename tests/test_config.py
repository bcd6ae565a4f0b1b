"""Configuration: defaults, a TOML file, environment overrides, flags; clear errors."""

from pathlib import Path

import pytest

from mitreden.config import ConfigError, load_settings
from mitreden.identity import load_pseudonymizer


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "mitreden.toml"
    config.write_text('db = "/srv/file.db"\nidle_timeout_hours = 2\nlog_level = "INFO"\n')
    settings = load_settings(config, environ={})
    assert (settings.db, settings.idle_timeout_hours) == (Path("/srv/file.db"), 2.0)
    settings = load_settings(config, environ={"MITREDEN_DB": "/srv/env.db"})
    assert settings.db == Path("/srv/env.db") and settings.log_level == "INFO"
    settings = load_settings(config, environ={"MITREDEN_DB": "/srv/env.db"}, db="/srv/flag.db")
    assert settings.db == Path("/srv/flag.db")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("db = ", "not valid TOML"),
        ('colour = "blue"\n', "unknown setting colour"),
        ("idle_timeout_hours = -1\n", "must be positive"),
        ("embedding_backend = 3\n", "must be text"),
    ],
)
def test_bad_config_file_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "mitreden.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(config, environ={})


def test_participant_ids_are_keyed_hashes_stable_per_key(tmp_path: Path) -> None:
    settings = load_settings(environ={}, db=str(tmp_path / "a.db"))
    first = load_pseudonymizer(settings).participant("telegram", "12345")
    assert first == load_pseudonymizer(settings).participant("telegram", "12345")
    assert "12345" not in first and len(first) == 32
    assert first != load_pseudonymizer(settings).participant("matrix", "12345")
    assert settings.secret_file.stat().st_mode & 0o777 == 0o600
    other = load_settings(environ={"MITREDEN_SECRET": "another key"}, db=str(tmp_path / "a.db"))
    assert load_pseudonymizer(other).participant("telegram", "12345") != first


@pytest.mark.parametrize(
    ("url", "listen", "message"),
    [
        ("http://bot.example.org/hook", "127.0.0.1:8443", "only posts to https://"),
        ("https://bot.example.org/hook", "8443", "expected host:port"),
        ("https://bot.example.org/hook", "0.0.0.0:99999", "expected host:port"),
        ("https://bot.example.org/hook", "localhost:port", "expected host:port"),
    ],
)
def test_a_broken_webhook_setting_is_named(url: str, listen: str, message: str) -> None:
    settings = load_settings(
        environ={"MITREDEN_TELEGRAM_WEBHOOK_URL": url, "MITREDEN_TELEGRAM_WEBHOOK_LISTEN": listen}
    )
    with pytest.raises(ConfigError, match=message):
        settings.webhook()


def test_webhook_settings_from_the_environment() -> None:
    settings = load_settings(
        environ={"MITREDEN_TELEGRAM_WEBHOOK_URL": "https://bot.example.org/t/hook"}
    )
    assert settings.webhook() == ("https://bot.example.org/t/hook", "127.0.0.1", 8443)
    assert load_settings(environ={}).webhook() is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MITREDEN_MATRIX_USER_ID": "@bot:example.org"}, "matrix_homeserver is not set"),
        ({"MITREDEN_MATRIX_HOMESERVER": "matrix.example.org"}, "expected an address"),
        ({"MITREDEN_MATRIX_HOMESERVER": "https://m.example.org"}, "expected @name:server"),
        (
            {
                "MITREDEN_MATRIX_HOMESERVER": "https://m.example.org",
                "MITREDEN_MATRIX_USER_ID": "@bot:example.org",
            },
            "set matrix_password or matrix_access_token",
        ),
        (
            {
                "MITREDEN_MATRIX_HOMESERVER": "https://m.example.org",
                "MITREDEN_MATRIX_USER_ID": "@bot:example.org",
                "MITREDEN_MATRIX_PASSWORD": "secret",
                "MITREDEN_MATRIX_MODERATOR_ROOM": "Moderation",
            },
            "expected a room id",
        ),
    ],
)
def test_a_broken_matrix_setting_is_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ).matrix()


def test_matrix_rooms_may_be_ids_of_any_room_version_or_aliases() -> None:
    base = {
        "MITREDEN_MATRIX_HOMESERVER": "https://m.example.org",
        "MITREDEN_MATRIX_USER_ID": "@bot:example.org",
        "MITREDEN_MATRIX_ACCESS_TOKEN": "syt_token",
    }
    for room in ("!abc:example.org", "!Cwv3SUpa0H00xUvrbd8-o", "#moderation:example.org"):
        settings = load_settings(environ={**base, "MITREDEN_MATRIX_MODERATOR_ROOM": room})
        assert settings.matrix() and settings.matrix_moderator_room == room
    assert load_settings(environ={}).matrix() is False
