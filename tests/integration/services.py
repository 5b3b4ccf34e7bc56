"""Real services for integration tests: a throwaway PostgreSQL server and a headless Chromium with no network.

Both come from Debian's packages (``postgresql``, ``chromium``; ``bash .ci/run`` installs them as root). Nothing
here uses a system-wide instance: every server lives in its own temporary folder, listens on loopback only, and
is gone when its context manager exits. ``png_is_blank`` decodes PNG files with the standard library alone.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

POSTGRES_ROOT = Path("/usr/lib/postgresql")  # Debian's layout: /usr/lib/postgresql/<major>/bin
POSTGRES_PROGRAMS = ("initdb", "pg_ctl", "postgres", "createdb")
POSTGRES_OS_USER = "postgres"  # the unprivileged system user Debian's package creates; used when we are root
POSTGRES_SUPERUSER = "repropack"
POSTGRES_DATABASE = "repropack_test"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_TIMEOUT_S = 60
WINDOW_SIZE = (1280, 2000)


# --- PostgreSQL ---------------------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` that holds every program the server needs.

    Raises RuntimeError naming what is missing when Debian's ``postgresql`` package is not installed."""
    candidates = sorted(
        (path for path in POSTGRES_ROOT.glob("*/bin") if path.parent.name.isdigit()),
        key=lambda path: int(path.parent.name),
        reverse=True,
    )
    for candidate in candidates:
        if all(os.access(candidate / name, os.X_OK) for name in POSTGRES_PROGRAMS):
            return candidate
    if candidates:
        missing = [name for name in POSTGRES_PROGRAMS if not os.access(candidates[0] / name, os.X_OK)]
        found = f"{candidates[0]} lacks {', '.join(missing)}"
    else:
        found = f"no {POSTGRES_ROOT}/<version>/bin folder exists"
    raise RuntimeError(
        f"PostgreSQL server programs ({', '.join(POSTGRES_PROGRAMS)}) not found: {found}. "
        "Install Debian's PostgreSQL server as root: apt-get install -y postgresql (or run 'bash .ci/run')."
    )


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _conf_string(value: str) -> str:
    """``value`` as a quoted postgresql.conf string."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a brand-new PostgreSQL server in a fresh temporary folder and yield its URL.

    The server listens on 127.0.0.1 only, on a free port, with its unix socket inside the folder (never in
    /var/run) and trust authentication; a database is created for the caller. The URL looks like
    ``postgresql://repropack@127.0.0.1:PORT/repropack_test``. On exit, even when the body raises, the server
    is stopped (``pg_ctl stop -m fast``) and the folder removed. As root, the server programs run as Debian's
    unprivileged ``postgres`` user (PostgreSQL refuses to run as root), which then owns the folder.
    """
    bin_dir = postgres_bin_dir()
    as_user: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(POSTGRES_OS_USER)
        except KeyError:
            raise RuntimeError(
                f"PostgreSQL refuses to run as root and there is no '{POSTGRES_OS_USER}' system user to run it as; "
                "install Debian's postgresql package (it creates that user): apt-get install -y postgresql"
            ) from None
        runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")  # PATH may lack sbin
        if runuser is None:
            raise RuntimeError("running PostgreSQL as root needs 'runuser' (Debian's util-linux package)")
        as_user = [runuser, "-u", POSTGRES_OS_USER, "--"]

    folder = Path(tempfile.mkdtemp(prefix="repropack-postgres-"))
    data = folder / "data"
    log = folder / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no stray PGHOST/PGPORT/PGDATA
    env["LC_ALL"] = "C"

    def run(command: Sequence[str], what: str, *, server: bool = True, timeout: float = 60) -> None:
        prefix = as_user if server else []
        try:
            done = subprocess.run(
                [*prefix, *command], cwd=folder, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"PostgreSQL: {what} did not finish within {timeout:.0f} s") from None
        if done.returncode != 0:
            server_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"PostgreSQL: {what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()}"
                + (f"\nserver log:\n{server_log}" if server_log else "")
            )

    try:
        if owner is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
            if subprocess.run([*as_user, "test", "-w", str(folder)], cwd="/").returncode != 0:
                raise RuntimeError(
                    f"PostgreSQL: the '{POSTGRES_OS_USER}' user cannot write to {folder} (a folder above it is "
                    "closed to other users); point TMPDIR at a folder it can reach, such as /tmp"
                )
        run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                POSTGRES_SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            "initdb",
        )
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# repropack tests: loopback only, socket in the temporary folder, no durability needed\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = {_conf_string(str(folder))}\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        with open(data / "pg_hba.conf", "w") as hba:  # trust on loopback and the private socket; nothing else
            hba.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        pg_ctl = str(bin_dir / "pg_ctl")
        for attempt in range(3):  # another process may take the free port between the probe and the bind
            port = _free_port()
            try:
                run([pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "30", "-o", f"-p {port}", "start"], "start")
                break
            except RuntimeError:
                if attempt == 2 or "already in use" not in (log.read_text() if log.exists() else ""):
                    raise
        client = [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", POSTGRES_SUPERUSER]
        run([*client, POSTGRES_DATABASE], "createdb", server=False)
        yield f"postgresql://{POSTGRES_SUPERUSER}@127.0.0.1:{port}/{POSTGRES_DATABASE}"
    finally:
        try:
            if (data / "postmaster.pid").exists():  # also after a 'pg_ctl start' that gave up waiting
                try:
                    run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"], "stop")
                except RuntimeError:
                    _kill_postmaster(data)  # cleanup must not hide the body's own error: no raise here
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _kill_postmaster(data: Path) -> None:
    """Last resort when ``pg_ctl stop`` fails: SIGKILL the postmaster named in ``postmaster.pid``."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)


# --- Headless Chromium --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageResult:
    """What headless Chromium made of one HTML file: the DOM after load, serialized, and a PNG screenshot."""

    dom: str
    screenshot: Path


def chromium_binary() -> str:
    """The path of Debian's ``chromium`` (or ``chromium-browser``) on PATH; RuntimeError when absent."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    raise RuntimeError(
        f"headless browser tests need Chromium, but neither {' nor '.join(CHROMIUM_NAMES)} is on PATH; "
        "install it as root: apt-get install -y chromium (or run 'bash .ci/run')"
    )


def chromium_flags(profile: Path) -> list[str]:
    """The flags every headless run here gets: no sandbox (it needs privileges a container lacks), no GPU, a
    throwaway profile, and no first-run, sync, extension or update traffic."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--mute-audio",
    ]


def _no_network_prefix() -> list[str]:
    """The command prefix that runs a program in a new network namespace holding only a loopback that is down."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeError("running Chromium without network needs 'unshare' (Debian's util-linux package)")
    return [unshare, "--net"] if os.geteuid() == 0 else [unshare, "--map-root-user", "--net"]


def _chromium_noise(line: str) -> bool:
    """Stderr lines headless Chromium prints on every run in a container (no D-Bus, no UPower): not errors."""
    return "dbus" in line or "org.freedesktop" in line or not line.strip()


def _run_chromium(command: list[str], what: str, stderr_file: Path) -> str:
    """Run ``command`` in a session of its own (so a timeout kills renderers too); its stdout, or RuntimeError."""
    with open(stderr_file, "w+") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True, start_new_session=True
        )
        try:
            stdout, _ = process.communicate(timeout=CHROMIUM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            stdout = None
        stderr.seek(0)
        lines = [line for line in stderr.read().splitlines() if not _chromium_noise(line)]
    detail = "\n".join(lines[-30:]) or "(no stderr)"
    if stdout is None:
        raise RuntimeError(f"headless Chromium ({what}) did not finish within {CHROMIUM_TIMEOUT_S} s:\n{detail}")
    if process.returncode != 0:
        raise RuntimeError(f"headless Chromium ({what}) failed (exit {process.returncode}):\n{detail}")
    return stdout


def headless_page(html_file: Path, out_dir: Path) -> PageResult:
    """Open ``html_file`` in headless Chromium with the network off; return its DOM after load and a screenshot.

    Chromium runs twice (``--dump-dom``, then ``--screenshot`` at 1280x2000), each time in a new, empty network
    namespace (``unshare --net``; unprivileged, with ``--map-root-user``), so a page cannot fetch anything, not
    even from this host's loopback. The screenshot is ``out_dir/<html stem>.png``; the throwaway profile
    (``--user-data-dir``) lives in ``out_dir`` while Chromium runs and is removed afterwards. Each run has a
    60 s limit; a failure raises RuntimeError with Chromium's stderr.
    """
    html_file = html_file.resolve()
    if not html_file.is_file():
        raise RuntimeError(f"headless_page: {html_file} is not a file")
    out_dir.mkdir(parents=True, exist_ok=True)
    screenshot = out_dir.resolve() / f"{html_file.stem}.png"
    screenshot.unlink(missing_ok=True)
    binary = chromium_binary()
    browser = [*_no_network_prefix(), binary]
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=out_dir)).resolve()
    try:
        flags = chromium_flags(profile)
        url = html_file.as_uri()
        dom = _run_chromium([*browser, *flags, "--dump-dom", url], "--dump-dom", profile / "dump-dom.stderr")
        if not dom.strip():
            raise RuntimeError(f"headless Chromium printed no DOM for {html_file}")
        window = f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}"
        _run_chromium(
            [*browser, *flags, f"--screenshot={screenshot}", window, url], "--screenshot", profile / "shot.stderr"
        )
        if not screenshot.is_file():
            raise RuntimeError(f"headless Chromium exited cleanly but wrote no screenshot to {screenshot}")
        return PageResult(dom=dom, screenshot=screenshot)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# --- PNG ----------------------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel (3: palette indices)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(kind: int, line: bytes, prior: bytes, bpp: int) -> bytes:
    """One scanline with its PNG filter (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) undone."""
    if kind == 0:
        return line
    if kind == 2:  # bytewise (line + prior) % 256 on big integers: no carry crosses a byte
        size = len(line)
        low, high = int.from_bytes(b"\x7f" * size, "big"), int.from_bytes(b"\x80" * size, "big")
        x, y = int.from_bytes(line, "big"), int.from_bytes(prior, "big")
        return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(size, "big")
    out = bytearray(line)
    if kind == 1:  # a running sum per channel, mod 256 (C loops: accumulate, map)
        for channel in range(bpp):
            out[channel::bpp] = bytes(map((0xFF).__and__, itertools.accumulate(line[channel::bpp])))
    elif kind == 3:
        for i in range(len(out)):
            left = out[i - bpp] if i >= bpp else 0
            out[i] = (out[i] + ((left + prior[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(len(out)):
            if i >= bpp:
                out[i] = (out[i] + _paeth(out[i - bpp], prior[i], prior[i - bpp])) & 0xFF
            else:
                out[i] = (out[i] + prior[i]) & 0xFF
    else:
        raise ValueError(f"PNG: unknown filter type {kind}")
    return bytes(out)


def png_rows(path: Path) -> tuple[int, int, int, Iterator[bytes]]:
    """``(width, height, bytes per pixel, rows)`` of an 8-bit, non-interlaced PNG; ``rows`` yields each
    scanline's raw samples with its filter undone. ValueError for anything else (16-bit, interlaced, not PNG)."""
    data = path.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError(f"{path} is not a PNG file")
    offset, header, compressed = len(PNG_SIGNATURE), b"", bytearray()
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            break
    if len(header) != 13:
        raise ValueError(f"{path}: PNG without a valid IHDR chunk")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in _CHANNELS or interlace != 0:
        raise ValueError(
            f"{path}: only 8-bit, non-interlaced PNGs are supported (bit depth {depth}, colour type {colour}, "
            f"interlace {interlace})"
        )
    bpp = _CHANNELS[colour]
    stride = width * bpp

    def rows() -> Iterator[bytes]:
        raw = zlib.decompress(bytes(compressed))
        if len(raw) < height * (stride + 1):
            raise ValueError(f"{path}: PNG image data is truncated")
        prior = bytes(stride)
        for row in range(height):
            start = row * (stride + 1)
            prior = _unfilter(raw[start], raw[start + 1 : start + 1 + stride], prior, bpp)
            yield prior

    return width, height, bpp, rows()


def png_is_blank(path: Path) -> bool:
    """True when every pixel of the PNG at ``path`` has the same colour (alpha included), e.g. a screenshot
    of a page that rendered nothing. Standard library only; stops at the first pixel that differs."""
    width, _, bpp, rows = png_rows(path)
    expected: bytes | None = None
    for row in rows:
        if expected is None:
            expected = row[:bpp] * width
        if row != expected:
            return False
    return True
