"""Tampered copies of a real image, one change each: verify fails with exit 1, names the change, and runs
nothing. The image holds a real (local) wheel with a module, a console script and a .data script, so
package files can be edited, with and without a RECORD rewritten to match."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import assert_tampering_is_named, new_experiment, repropack

pytestmark = pytest.mark.docker

SITE = "/repro/venv/lib/python3.11/site-packages"
TINY = f"{SITE}/tinypkg/__init__.py"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def make_wheel(folder: Path) -> None:
    files = {
        "tinypkg/__init__.py": b"def main():\n    print('tiny')\n",
        "tinypkg-1.0.data/scripts/tiny-tool": b"#!python\nprint('tool')\n",
        "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
        "tinypkg-1.0.dist-info/entry_points.txt": b"[console_scripts]\ntiny = tinypkg:main\n",
    }
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    with zipfile.ZipFile(folder / "tinypkg-1.0-py3-none-any.whl", "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("tinypkg-1.0.dist-info/RECORD", record + "tinypkg-1.0.dist-info/RECORD,,\n")


@pytest.fixture(scope="module")
def image(
    tmp_path_factory: pytest.TempPathFactory, base_image: str, docker_client: docker.DockerClient
) -> Iterator[str]:
    """A tiny experiment that installs tinypkg, built once for the module; verify passes on it."""
    root = tmp_path_factory.mktemp("tamper")
    wheels = root / "wheels"
    wheels.mkdir()
    make_wheel(wheels)
    env = {"PIP_FIND_LINKS": f"{os.environ.get('PIP_FIND_LINKS', '')} {wheels}".strip()}
    experiment = new_experiment(root / "repo", name="tamper", requirements="tinypkg==1.0\n", env=env)
    tag = str(experiment.build("tamper", env=env)["tag"])
    clean = repropack("verify", tag, env={"REPROPACK_NO_CACHE": "1"})
    assert clean.code == 0, clean.stdout + clean.stderr
    yield tag


REWRITE_RECORD = (
    f"RUN echo 'import os' >> {TINY} && /repro/venv/bin/python -I -c \"import base64, hashlib, pathlib; "
    f"p = pathlib.Path('{TINY}'); d = p.read_bytes(); "
    "h = base64.urlsafe_b64encode(hashlib.sha256(d).digest()).decode().rstrip('='); "
    f"r = pathlib.Path('{SITE}/tinypkg-1.0.dist-info/RECORD'); "
    "r.write_text(''.join(('tinypkg/__init__.py,sha256=' + h + ',' + str(len(d)) + chr(10)) "
    "if l.startswith('tinypkg/__init__.py,') else l + chr(10) for l in r.read_text().splitlines()))\""
)

CASES = [
    # code, data, runtime, manifest
    ("code edited", "RUN echo '# x' >> /repro/code/train.py", "/repro/code/train.py: sha256 differs"),
    ("code added", "RUN echo 'x = 1' > /repro/code/extra.py", "/repro/code/extra.py: not in the manifest"),
    ("data edited", "RUN f=$(find /repro/data -type f | head -n 1) && echo 9,9 >> $f", "sha256 differs"),
    ("runtime edited", "RUN echo '#' >> /repro/runtime/entrypoint.py", "/repro/runtime/entrypoint.py: sha256 differs"),
    ("manifest edited", "RUN sed -i 's/6.0/7.0/' /repro/manifest.json", "content differs from its sha256"),
    # what Python runs at start-up, package files
    ("a .pth file", f"RUN echo 'import os' > {SITE}/evil.pth", f"{SITE}/evil.pth: not from a locked wheel"),
    (
        "sitecustomize in site-packages",
        f"RUN echo 'import os' > {SITE}/sitecustomize.py",
        f"{SITE}/sitecustomize.py: not from a locked wheel",
    ),
    (
        "sitecustomize in the stdlib",
        "RUN echo 'import os' > /usr/lib/python3.11/sitecustomize.py",
        "sitecustomize.py: added outside /repro",
    ),  # Debian's is a link to /etc/python3.11/sitecustomize.py
    ("package file edited", f"RUN echo 'import os' >> {TINY}", f"{TINY}: sha256 differs"),
    ("package file edited, RECORD rewritten", REWRITE_RECORD, f"{TINY}: sha256 differs"),
    ("package file deleted", f"RUN rm {TINY}", f"{TINY}: missing"),  # not a base file: expected, not there
    ("console script edited", "RUN echo '# x' >> /repro/venv/bin/tiny", "/repro/venv/bin/tiny: sha256 differs"),
    (".data script edited", "RUN echo '# x' >> /repro/venv/bin/tiny-tool", "/repro/venv/bin/tiny-tool: sha256 differs"),
    (
        "an unchecked .pyc",
        f"RUN /repro/venv/bin/python -I -m compileall -q {SITE}/tinypkg",
        f"{SITE}/tinypkg/__pycache__",
    ),
    # outside /repro, venv links
    ("stdlib edited", "RUN echo '#' >> /usr/lib/python3.11/os.py", "/usr/lib/python3.11/os.py: added outside /repro"),
    (
        "python3 swapped for a wrapper",
        "RUN mv /usr/bin/python3.11 /usr/bin/python3.11.real && printf '#!/bin/sh\\nexec /usr/bin/python3.11.real "
        '"$@"\\n\' > /usr/bin/python3.11 && chmod +x /usr/bin/python3.11',
        "/usr/bin/python3.11: added outside /repro",
    ),
    ("/etc/ld.so.preload", "RUN touch /etc/ld.so.preload", "/etc/ld.so.preload: added outside /repro"),
    ("a base file made setuid", "RUN chmod u+s /usr/bin/python3.11", "/usr/bin/python3.11: added outside /repro"),
    ("a base file's owner changed", "RUN chown 1000 /etc/passwd", "/etc/passwd: added outside /repro"),
    ("a base file deleted", "RUN rm /etc/os-release", "/etc/os-release: deleted"),
    ("a base folder emptied", "RUN rm -rf /usr/share/doc && mkdir /usr/share/doc", "deleted"),
    (
        "venv link retargeted",
        "RUN ln -sf /usr/bin/python3.11 /repro/venv/bin/python3",
        "/repro/venv/bin/python3: a link (to /usr/bin/python3.11) nothing explains",
    ),
    (
        "pyvenv.cfg edited",
        "RUN sed -i 's/= false/= true/' /repro/venv/pyvenv.cfg",
        "/repro/venv/pyvenv.cfg: not what the venv writes",
    ),
    # the image configuration
    ("Env PYTHONPATH", "ENV PYTHONPATH=/tmp", "Env PYTHONPATH='/tmp': repropack sets no such value"),
    ("Env LD_PRELOAD", "ENV LD_PRELOAD=/tmp/x.so", "Env LD_PRELOAD='/tmp/x.so'"),
    ("Env PATH", "ENV PATH=/tmp:/usr/bin:/bin", "Env PATH='/tmp:/usr/bin:/bin', repropack sets"),
    ("Env PYTHONPYCACHEPREFIX", "ENV PYTHONPYCACHEPREFIX=/tmp", "Env PYTHONPYCACHEPREFIX='/tmp'"),
    ("Env REPRO_MANIFEST", "ENV REPRO_MANIFEST=/tmp/forged.json", "Env REPRO_MANIFEST='/tmp/forged.json'"),
    ("User", "USER 1000", 'User is "1000"'),
    ("WorkingDir", "WORKDIR /tmp", 'WorkingDir is "/tmp"'),
    ("a label added", "LABEL org.example.note=x", "Labels org.example.note='x': repropack sets no such value"),
    ("the digest label changed", "LABEL io.repropack.manifest.digest=sha256:" + "0" * 64, "label says sha256:"),
    ("Volumes", "VOLUME /repro/code", "Volumes is"),
    ("ExposedPorts", "EXPOSE 8080", "ExposedPorts is"),
    ("Healthcheck", "HEALTHCHECK CMD true", "Healthcheck is"),
    ("OnBuild", "ONBUILD RUN true", "OnBuild is"),
    ("Shell", 'SHELL ["/bin/bash", "-c"]', "Shell is"),
    ("StopSignal", "STOPSIGNAL SIGKILL", 'StopSignal is "SIGKILL"'),
    ("Entrypoint", 'ENTRYPOINT ["/bin/sh", "-c"]', 'Entrypoint is ["/bin/sh", "-c"]'),
    ("Cmd", 'CMD ["evaluate"]', 'Cmd is ["evaluate"]'),
]


@pytest.mark.parametrize(("change", "named"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_tampering_is_named_and_nothing_runs(
    image: str, docker_client: docker.DockerClient, change: str, named: str
) -> None:
    assert_tampering_is_named(docker_client, image, change, named)
