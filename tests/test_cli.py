"""The `mitreden` command as an operator runs it: real subprocesses, real files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MITREDEN = str(Path(sys.executable).parent / "mitreden")


def run(*args: str, stdin: str = "", home: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MITREDEN_")}
    clean.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        **env,
    )
    return subprocess.run(
        [MITREDEN, *args], input=stdin, capture_output=True, text=True, env=clean, timeout=300
    )


SCRIPT = (
    "\n".join(
        [
            "Hallo",
            "1",
            "ja",
            "Mehr Bäume pflanzen gegen die Hitze im Sommer",
            "1",
            "Pankow",
            "3",
            "1",
            "nein",
            "nein",
        ]
    )
    + "\n"
)


def test_scripted_chat_stores_an_idea_visible_in_the_export(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    chat = run("chat", "--db", str(db), stdin=SCRIPT, home=tmp_path)
    assert chat.returncode == 0, chat.stderr
    assert "Zu welchem Thema passt deine Idee am besten?" in chat.stdout
    assert "  1) Natur, Wasser, Energie" in chat.stdout
    assert "Danke fürs Mitmachen!" in chat.stdout

    ideas = run("ideas", "--format", "json", "--db", str(db), home=tmp_path)
    assert ideas.returncode == 0, ideas.stderr
    [idea] = json.loads(ideas.stdout)
    assert idea["text"] == "Mehr Bäume pflanzen gegen die Hitze im Sommer"
    assert idea["confirmed_field"] == "regeneration_natuerlicher_ressourcen"
    assert idea["district"] == "pankow"

    csv_out = run("ideas", "--format", "csv", "--db", str(db), home=tmp_path)
    assert csv_out.stdout.splitlines()[0].startswith("id,created_at,language,text")
    assert "Mehr Bäume pflanzen" in csv_out.stdout


def test_the_database_path_comes_from_the_environment(tmp_path: Path) -> None:
    db = tmp_path / "from-env.db"
    chat = run(
        "chat",
        stdin="Hallo\n",
        home=tmp_path,
        MITREDEN_DB=str(db),
        MITREDEN_EMBEDDING_BACKEND="none",
    )
    assert chat.returncode == 0, chat.stderr
    assert db.exists() and (tmp_path / "from-env.db.key").exists()


def test_the_default_database_lives_in_the_user_data_directory(tmp_path: Path) -> None:
    chat = run("chat", stdin="Hallo\n", home=tmp_path, MITREDEN_EMBEDDING_BACKEND="none")
    assert chat.returncode == 0, chat.stderr
    assert (tmp_path / "data" / "mitreden" / "mitreden.db").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ({"MITREDEN_IDLE_TIMEOUT_HOURS": "soon"}, "MITREDEN_IDLE_TIMEOUT_HOURS"),
        ({"MITREDEN_EMBEDDING_BACKEND": "word2vec"}, "unknown embedding backend"),
        ({"MITREDEN_TAXONOMY": "/no/such/taxonomy.yaml"}, "cannot read taxonomy"),
        ({"MITREDEN_CONFIG": "/no/such/config.toml"}, "cannot read config file"),
    ],
)
def test_bad_settings_get_a_clear_error_not_a_traceback(
    tmp_path: Path, setup: dict[str, str], message: str
) -> None:
    result = run("chat", "--db", str(tmp_path / "x.db"), stdin="Hallo\n", home=tmp_path, **setup)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_ideas_without_a_database_says_so(tmp_path: Path) -> None:
    result = run("ideas", "--db", str(tmp_path / "missing.db"), home=tmp_path)
    assert result.returncode == 2
    assert "no database" in result.stderr
    assert not (tmp_path / "missing.db").exists()


def test_broken_input_lines_do_not_crash_the_chat(tmp_path: Path) -> None:
    hostile = "\n".join(["", "\x00\x01", "/", "/x" * 500, "9" * 50, "ä" * 5000, "1"]) + "\n"
    result = run(
        "chat",
        "--db",
        str(tmp_path / "x.db"),
        stdin=hostile,
        home=tmp_path,
        MITREDEN_EMBEDDING_BACKEND="none",
    )
    assert result.returncode == 0, result.stderr
    assert "Bist du einverstanden" in result.stdout
