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


def test_run_with_a_plain_http_webhook_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = run(
        "run",
        "--db",
        str(tmp_path / "x.db"),
        home=tmp_path,
        MITREDEN_TELEGRAM_TOKEN="1:abc",
        MITREDEN_TELEGRAM_WEBHOOK_URL="http://bot.example.org/hook",
    )
    assert result.returncode == 2
    assert "only posts to https://" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.db").exists()


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


def test_cluster_and_summary_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    assert run("chat", "--db", db, stdin=SCRIPT, home=tmp_path).returncode == 0

    cluster = run("cluster", "--db", db, home=tmp_path)
    assert cluster.returncode == 0, cluster.stderr
    assert cluster.stdout.startswith("1 ideas in 1 groups")

    markdown = run("summary", "--db", db, home=tmp_path)
    assert markdown.returncode == 0, markdown.stderr
    assert markdown.stdout.startswith("# Ideen nach Handlungsfeld")
    assert "> Mehr Bäume pflanzen gegen die Hitze im Sommer" in markdown.stdout
    assert "pankow (1)" in markdown.stdout
    english = run("summary", "--language", "en", "--db", db, home=tmp_path)
    assert "1 ideas from 1 people" in english.stdout

    rows = run("summary", "--format", "csv", "--db", db, home=tmp_path).stdout.splitlines()
    assert rows[0].startswith("lane,field,group,label") and len(rows) == 2
    [field] = json.loads(run("summary", "--format", "json", "--db", db, home=tmp_path).stdout)
    assert field["lane"] == "regeneration_natuerlicher_ressourcen"
    only = run("summary", "--field", "new-topics", "--format", "json", "--db", db, home=tmp_path)
    assert json.loads(only.stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["summary", "--field", "nope"], "no action field 'nope'"),
        (["summary", "--format", "pdf"], "invalid choice"),
        (["cluster", "--db", "/nonexistent/x.db"], "no database at /nonexistent/x.db"),
    ],
)
def test_summary_and_cluster_refuse_bad_input(tmp_path: Path, args, message) -> None:
    result = run(*args, home=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


EVAL_ROWS = {
    "regeneration_natuerlicher_ressourcen": [
        "Mehr Bäume gegen die Hitze pflanzen",
        "Regenwasser in der Stadt sammeln",
        "Solaranlagen auf alle Dächer",
        "Parks grüner machen",
    ],
    "effektive_verwaltungsprozesse": [
        "Termine im Bürgeramt online buchen",
        "Anträge digital stellen",
        "Weniger Papierformulare beim Amt",
        "Schneller einen Termin beim Amt",
    ],
}


def write_eval_csv(path: Path, extra: str = "") -> Path:
    lines = ["id,text,label,lang"]
    for label, texts in EVAL_ROWS.items():
        lines += [f"{label[:3]}{n},{text},{label},de" for n, text in enumerate(texts)]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def test_eval_prints_suggestion_and_grouping_figures(tmp_path: Path) -> None:
    data = write_eval_csv(tmp_path / "data.csv", extra="x9,,effektive_verwaltungsprozesse,de\n")
    taxonomy = str(Path(__file__).parent.parent / "data" / "gdb_action_fields.yaml")
    result = run("eval", "--data", str(data), "--taxonomy", taxonomy, "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert (figures["items"], figures["skipped"]) == (8, 1)
    assert figures["zero_shot_top1"] >= 0.75 and figures["zero_shot_top3"] == 1.0
    assert set(figures["few_shot_top1"]) == {"10", "30"}
    assert 0 <= figures["nmi"] <= 1 and -1 <= figures["ari"] <= 1
    assert figures["embed_per_second"] > 0

    table = run("eval", "--data", str(data), "--taxonomy", taxonomy, "--sample", "4", home=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "items (skipped)               4 (1)" in table.stdout
    assert "grouping ARI / NMI" in table.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,text\n1,Bäume\n", "lacks the column(s) label"),
        (
            "id,text,label\n1,Bäume,erfunden\n2,Amt,erfunden\n",
            "not ids in the taxonomy: 'erfunden'",
        ),
        ("id,text,label\n", "fewer than two rows"),
        (b"\xff\xfe\x00garbage\x81", "cannot read"),
        (None, "cannot read"),
    ],
)
def test_eval_refuses_bad_data_files(tmp_path: Path, content, message) -> None:
    data = tmp_path / "data.csv"
    if isinstance(content, bytes):
        data.write_bytes(content)
    elif content is not None:
        data.write_text(content, encoding="utf-8")
    taxonomy = str(Path(__file__).parent.parent / "data" / "gdb_action_fields.yaml")
    result = run("eval", "--data", str(data), "--taxonomy", taxonomy, home=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_eval_refuses_a_sample_too_small(tmp_path: Path) -> None:
    data = write_eval_csv(tmp_path / "data.csv")
    result = run(
        "eval", "--data", str(data), "--taxonomy", str(data), "--sample", "1", home=tmp_path
    )
    assert result.returncode == 2 and "at least 2" in result.stderr
