"""Real services for integration tests: a throwaway PostgreSQL server, a headless Chromium with no network, and a
one-node Slurm cluster.

All come from Debian's packages (``postgresql``, ``chromium``, ``slurm-wlm`` and ``munge``; ``bash .ci/run``
installs them as root). Nothing here uses a system-wide instance: every server lives in its own temporary folder,
listens on loopback only, and is gone when its context manager exits. ``png_is_blank`` decodes PNG files with the
standard library alone.
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
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
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


# --- Slurm --------------------------------------------------------------------------------------------------

SLURM_DAEMONS = ("munged", "slurmctld", "slurmd")  # munge: Debian's munge package; the rest: slurm-wlm
SLURM_CLIENTS = ("sinfo", "squeue", "sbatch", "scancel")
SLURM_SBIN = "/usr/sbin:/sbin"  # where Debian puts the daemons; a non-root PATH often lacks it
SLURM_MARKER = "REPROPACK_SLURM_CLUSTER"  # in every daemon's (and client's) environment: finds leftovers
SLURM_PARTITION = "debug"
SLURM_START_TIMEOUT_S = 30
SLURM_STOP_GRACE_S = 5
UNIX_SOCKET_MAX = 107  # sun_path is 108 bytes on Linux, the last one a NUL


@dataclass(frozen=True)
class SlurmCluster:
    """A running one-node Slurm cluster of a test's own.

    ``env`` is what a client needs on top of ``os.environ`` (``SLURM_CONF`` and the cluster's marker), e.g.
    ``subprocess.run(["sbatch", ...], env={**os.environ, **cluster.env})``. ``pids`` maps each daemon the
    cluster started (munged, slurmctld, slurmd) to its process id."""

    conf: Path
    env: dict[str, str]
    partition: str
    node: str
    cpus: int
    pids: dict[str, int]


def slurm_program(name: str) -> str:
    """The path of ``name`` (a Slurm or munge program), also looked up in /usr/sbin; RuntimeError when absent."""
    found = shutil.which(name) or shutil.which(name, path=SLURM_SBIN)
    if found is None:
        package = "munge" if name == "munged" else "slurm-wlm"
        raise RuntimeError(
            f"the Slurm test cluster needs '{name}' (Debian's {package} package), which is not installed; install "
            "it as root: apt-get install -y --no-install-recommends slurm-wlm munge (or run 'bash .ci/run')"
        )
    return found


def slurm_leftovers(workdir: Path) -> list[int]:
    """Process ids (other than this one) whose environment holds the marker of the cluster in ``workdir``:
    its daemons, their slurmstepd helpers, and the jobs submitted with ``SlurmCluster.env``."""
    needle = f"{SLURM_MARKER}={workdir.resolve()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or another user's process
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _tail(*paths: Path, size: int = 1500) -> str:
    """The last ``size`` characters of each file that exists, headed by its name."""
    parts = [f"--- {p.name}:\n{p.read_text(errors='replace')[-size:].strip()}" for p in paths if p.exists()]
    return "\n".join(parts) or "(no log written)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after a grace period; reaps the process either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=SLURM_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _memory_mb() -> int:
    """This machine's memory in MiB (what ``slurmd -C`` reports as RealMemory)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)


def _write_munge_key(path: Path) -> None:
    """A fresh random key, mode 0400, owned by whoever runs this (and so munged: it runs as the same user)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    try:
        os.write(fd, os.urandom(1024))
    finally:
        os.close(fd)


def _slurm_conf(workdir: Path, socket_path: Path, node: str, cpus: int) -> str:
    """slurm.conf for a one-node cluster on loopback whose every file lives in ``workdir``."""
    user = pwd.getpwuid(os.geteuid()).pw_name  # root as root; otherwise daemons and jobs all run as this user
    memory = max(1, _memory_mb() * 9 // 10)  # a bit under the machine's, so slurmd never drains the node
    ports = [_free_port()]
    while len(ports) < 2:  # two different ones: the kernel may hand out the port it just freed
        port = _free_port()
        if port not in ports:
            ports.append(port)
    lines = [
        "# a private one-node cluster for repropack's tests (tests/integration/services.py)",
        "ClusterName=repropack",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={ports[0]}",
        f"SlurmdPort={ports[1]}",
        f"SlurmUser={user}",
        f"SlurmdUser={user}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={socket_path}",
        f"StateSaveLocation={workdir / 'state'}",
        f"SlurmdSpoolDir={workdir / 'spool'}",
        f"SlurmctldPidFile={workdir / 'slurmctld.pid'}",
        f"SlurmdPidFile={workdir / 'slurmd.pid'}",
        f"SlurmctldLogFile={workdir / 'slurmctld.log'}",
        f"SlurmdLogFile={workdir / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=batch_sched_delay=0",  # start a submitted job now, not up to 3 s later
        "ReturnToService=2",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "MailProg=/bin/true",  # the default, /bin/mail, is absent: slurmctld would log an error at every start
        "MessageTimeout=5",
        "MinJobAge=5",  # sbatch --wait's poll stays at 2 s only while MinJobAge/2 <= 2 (the default 300: 2, 8, 32 s)
        "KillWait=2",
        "InactiveLimit=0",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN",
        f"PartitionName={SLURM_PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP",
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def slurm_cluster(workdir: Path) -> Iterator[SlurmCluster]:
    """Start a real one-node Slurm cluster whose every file lives in ``workdir``, and yield it once its node is idle.

    A munged of its own (fresh key, socket in ``workdir``; Slurm finds it through ``AuthInfo=socket=``), then
    ``slurmctld -D -i`` and ``slurmd -D`` with a slurm.conf whose only node is this host (short host name,
    address 127.0.0.1, ``os.cpu_count()`` CPUs) on two free private ports. A system-wide munged or Slurm, if
    any, is neither used nor disturbed. Failing to start within 30 s raises RuntimeError with the logs' tails.
    On exit, even when the body raises, every job is cancelled, slurmd, slurmctld and munged are stopped
    (SIGTERM, then SIGKILL after 5 s), and any process still carrying the cluster's marker is killed.
    ``workdir`` itself (logs included) is left for the caller to inspect or remove.
    """
    programs = {name: slurm_program(name) for name in (*SLURM_DAEMONS, *SLURM_CLIENTS)}
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    socket_path = workdir / "munge.socket"
    if len(os.fsencode(socket_path)) > UNIX_SOCKET_MAX:
        raise RuntimeError(f"slurm_cluster: {socket_path} is too long for a unix socket; use a shorter workdir")
    node = socket.gethostname().split(".")[0]  # what `hostname -s` says, and the name slurmd looks itself up by
    cpus = os.cpu_count() or 1
    conf = workdir / "slurm.conf"
    for folder in ("state", "spool"):
        (workdir / folder).mkdir(exist_ok=True)
    _write_munge_key(workdir / "munge.key")
    conf.write_text(_slurm_conf(workdir, socket_path, node, cpus))
    client_env = {"SLURM_CONF": str(conf), SLURM_MARKER: str(workdir)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SQUEUE_", "SINFO_"))}
    env.update(client_env)

    started: dict[str, subprocess.Popen[bytes]] = {}
    logs = [workdir / name for name in ("munged.log", "slurmctld.log", "slurmd.log")]
    outputs = [workdir / f"{name}.out" for name in SLURM_DAEMONS]

    def start(name: str, *args: str) -> None:
        with open(workdir / f"{name}.out", "wb") as out:
            started[name] = subprocess.Popen(
                [programs[name], *args],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal goes to the tests, which then stop the cluster
            )

    def fail(what: str) -> RuntimeError:
        return RuntimeError(f"Slurm test cluster in {workdir}: {what}\n{_tail(*outputs, *logs)}")

    def client(name: str, *args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [programs[name], *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def wait_for(what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + SLURM_START_TIMEOUT_S
        while not ready():
            dead = [name for name, process in started.items() if process.poll() is not None]
            if dead:
                raise fail(f"{', '.join(dead)} exited (code {started[dead[0]].returncode}) while waiting for {what}")
            if time.monotonic() > deadline:
                raise fail(f"{what} not within {SLURM_START_TIMEOUT_S} s")
            time.sleep(0.1)

    def node_idle() -> bool:
        try:
            return client("sinfo", "-h", "-o", "%T", "-n", node, timeout=10).stdout.split() == ["idle"]
        except subprocess.TimeoutExpired:
            return False

    try:
        # --force: the socket's folder is private (pytest's tmp_path is 0700), which munged otherwise refuses;
        # clients run as the same user, so they reach it. --foreground: the pid is ours to stop and to wait on (and
        # munged then logs to its stderr, munged.out, rather than to --log-file).
        start(
            "munged",
            "--foreground",
            "--force",
            f"--socket={socket_path}",
            f"--key-file={workdir / 'munge.key'}",
            f"--pid-file={workdir / 'munged.pid'}",
            f"--log-file={workdir / 'munged.log'}",
            f"--seed-file={workdir / 'munged.seed'}",
        )
        wait_for("munged's socket", socket_path.exists)
        start("slurmctld", "-D", "-i", "-f", str(conf))
        start("slurmd", "-D", "-f", str(conf))
        wait_for(f"node {node} to be idle", node_idle)
        yield SlurmCluster(
            conf=conf,
            env=client_env,
            partition=SLURM_PARTITION,
            node=node,
            cpus=cpus,
            pids={name: process.pid for name, process in started.items()},
        )
    finally:
        if len(started) == len(SLURM_DAEMONS) and all(process.poll() is None for process in started.values()):
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):  # cleanup never hides the body's error
                jobs = client("squeue", "-h", "-o", "%i", timeout=10).stdout.split()
                if jobs:
                    client("scancel", *jobs, timeout=10)
                    deadline = time.monotonic() + SLURM_STOP_GRACE_S
                    while client("squeue", "-h", "-o", "%i", timeout=10).stdout.split():
                        if time.monotonic() > deadline:
                            break
                        time.sleep(0.2)
        for name in ("slurmd", "slurmctld", "munged"):
            if name in started:
                _stop(started[name])
        for pid in slurm_leftovers(workdir):  # slurmstepd and job processes that outlived a cancel
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
