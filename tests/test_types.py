"""The type checker passes over everything that is installed as `mitreden`.

The repository keeps bot/, flows/, nlp/, store/ and data/ at the top, and setuptools installs
them as sub-packages of `mitreden` (pyproject's package-dir). mypy knows no such mapping, so
the test lays the package out as installed, with links, and checks it there with the
settings in pyproject.toml.
"""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_errors(tmp_path: Path) -> None:
    folders = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    package = tmp_path / "mitreden"
    package.mkdir()
    for entry in (ROOT / folders["mitreden"]).iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in folders.items():
        if name != "mitreden":
            (package / name.removeprefix("mitreden.")).symlink_to(ROOT / folder)
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "-p",
            "mitreden",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues found" in checked.stdout
