"""What the image's Python environment (/repro/venv) must hold, computed from the hash-pinned wheels
alone: their RECORD files, what pip adds, the console scripts, the venv's own files. See
docs/architecture.md, "How verify reads an image"."""

from __future__ import annotations

import base64
import configparser
import csv
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from repropack.runtime.layout import PYTHON, VENV

INTERPRETER = PYTHON
# pip's console-script template (pip/_internal/operations/install/wheel.py), unchanged from pip 10 to 24
SCRIPT = (
    "#!{python}\n"
    "# -*- coding: utf-8 -*-\n"
    "import re\n"
    "import sys\n"
    "from {module} import {name}\n"
    "if __name__ == '__main__':\n"
    "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
    "    sys.exit({func}())\n"
)
PYVENV_CFG = (  # a regular expression once {python} is filled in
    r"home = /usr/bin\n"
    r"include-system-site-packages = false\n"
    r"version = {python}\.[0-9]+\n"
    r"executable = /usr/bin/python{python}\n"
    r"command = /usr/bin/python3 -m venv --without-pip /repro/venv\n"
)


@dataclass
class Expected:
    """Absolute paths the environment must hold: files by sha256, links by target, and folders."""

    files: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    folders: set[str] = field(default_factory=set)
    free_files: set[str] = field(default_factory=set)  # pip's own RECORD files: any content
    pyvenv: re.Pattern[str] | None = None

    def add_file(self, path: str, sha256: str) -> None:
        self.files[path] = sha256
        self._parents(path)

    def _parents(self, path: str) -> None:
        folder = path.rpartition("/")[0]
        while folder.startswith(VENV + "/") and folder not in self.folders:
            self.folders.add(folder)
            folder = folder.rpartition("/")[0]


def _hex(record_hash: str) -> str | None:
    algorithm, _, value = record_hash.partition("=")
    if algorithm != "sha256" or not value:
        return None
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _console_scripts(text: str) -> dict[str, tuple[str, str]]:
    """Script name -> (module, attribute) for each console and GUI entry point."""
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # names are case-sensitive
    parser.read_string(text)
    scripts: dict[str, tuple[str, str]] = {}
    for section in ("console_scripts", "gui_scripts"):
        if parser.has_section(section):
            for name, value in parser.items(section):
                module, _, attribute = value.split("[")[0].strip().partition(":")
                scripts[name.strip()] = (module.strip(), attribute.strip())
    return scripts


def script_text(module: str, attribute: str) -> bytes:
    return SCRIPT.format(python=INTERPRETER, module=module, name=attribute.split(".")[0], func=attribute).encode()


def add_wheel(expected: Expected, wheel: Path, python: str) -> None:
    """Everything installing ``wheel`` with pip puts into the environment."""
    site = f"{VENV}/lib/python{python}/site-packages"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record_name = next(n for n in names if n.count("/") == 1 and n.endswith(".dist-info/RECORD"))
        info = record_name.rpartition("/")[0]
        distribution = info.removesuffix(".dist-info")
        rows = list(csv.reader(io.StringIO(archive.read(record_name).decode())))
        for row in rows:
            if not row or row[0] == record_name:
                continue
            digest = _hex(row[1]) if len(row) > 1 else None
            path = row[0]
            target, script = _installed_path(path, distribution, site, python)
            if script:
                data = archive.read(path)
                if data.startswith(b"#!python"):
                    data = f"#!{INTERPRETER}\n".encode() + data.split(b"\n", 1)[1]
                    digest = _sha256(data)
            expected.add_file(target, digest or "")
        if f"{info}/entry_points.txt" in names:
            entry_points = archive.read(f"{info}/entry_points.txt").decode()
            for name, (module, attribute) in _console_scripts(entry_points).items():
                expected.add_file(f"{VENV}/bin/{name}", _sha256(script_text(module, attribute)))
    expected.add_file(f"{site}/{info}/INSTALLER", _sha256(b"pip\n"))
    expected.add_file(f"{site}/{info}/REQUESTED", _sha256(b""))
    expected.free_files.add(f"{site}/{info}/RECORD")
    expected._parents(f"{site}/{info}/RECORD")


def _installed_path(path: str, distribution: str, site: str, python: str) -> tuple[str, bool]:
    """Where pip puts a wheel's file, and whether it is a script (its #!python line is rewritten)."""
    prefix = f"{distribution}.data/"
    if not path.startswith(prefix):
        return f"{site}/{path}", False
    scheme, _, rest = path[len(prefix) :].partition("/")
    if scheme == "scripts":
        return f"{VENV}/bin/{rest}", True
    if scheme == "data":
        return f"{VENV}/{rest}", False
    if scheme == "headers":
        return f"{VENV}/include/site/python{python}/{distribution.split('-')[0]}/{rest}", False
    return f"{site}/{rest}", False  # purelib, platlib


def environment(wheels: list[Path], python: str) -> Expected:
    """The whole environment the recipe makes from ``wheels`` for Python ``python`` (major.minor)."""
    expected = Expected()
    expected.folders |= {
        f"{VENV}/{p}"
        for p in (
            "bin",
            "include",
            f"include/python{python}",
            "lib",
            f"lib/python{python}",
            f"lib/python{python}/site-packages",
        )
    }
    expected.links |= {
        f"{VENV}/bin/python": "python3",
        f"{VENV}/bin/python3": "/usr/bin/python3",
        f"{VENV}/bin/python{python}": "python3",
        f"{VENV}/lib64": "lib",
    }
    expected.pyvenv = re.compile(PYVENV_CFG.format(python=re.escape(python)))
    for wheel in wheels:
        add_wheel(expected, wheel, python)
    return expected
