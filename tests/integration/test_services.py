"""The service helpers themselves, for real: a PostgreSQL server that answers and then is gone, headless
Chromium that renders a page with the network really off, and the standard-library PNG reader.

No Docker engine needed; they need Debian's ``postgresql`` and ``chromium`` packages (``bash .ci/run``)."""

from __future__ import annotations

import http.server
import re
import socket
import struct
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.integration import services
from tests.integration.services import headless_page, png_is_blank, png_rows, postgres_server

# --- PostgreSQL ---------------------------------------------------------------------------------------------


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_postgres_server_answers_queries_then_is_gone() -> None:
    with postgres_server() as url:
        match = re.fullmatch(r"postgresql://(\w+)@127\.0\.0\.1:(\d+)/(\w+)", url)
        assert match, url
        port = int(match.group(2))
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
            connection.execute("CREATE TABLE runs (id integer PRIMARY KEY, name text)")
            connection.execute("INSERT INTO runs VALUES (1, 'tiny')")
            row = connection.execute(
                "SELECT current_setting('data_directory'), current_setting('listen_addresses'),"
                " current_setting('unix_socket_directories'), current_database()"
            ).fetchone()
            assert row is not None
            data_directory, listen, sockets, database = row
        with psycopg.connect(url) as again:  # a new session sees the committed table
            assert again.execute("SELECT name FROM runs WHERE id = 1").fetchone() == ("tiny",)
        folder = Path(data_directory).parent
        assert listen == "127.0.0.1"
        assert Path(sockets) == folder  # the unix socket lives in the temporary folder, not /var/run
        assert database == match.group(3)
        assert folder.is_dir()
    assert not folder.exists()
    assert not port_open(port)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_postgres_server_stops_and_cleans_up_when_the_body_raises() -> None:
    with pytest.raises(ZeroDivisionError), postgres_server() as url:
        with psycopg.connect(url) as connection:
            row = connection.execute("SHOW data_directory").fetchone()
        assert row is not None
        folder = Path(row[0]).parent
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        _ = 1 / 0
    assert not folder.exists()
    assert not port_open(port)


def test_postgres_server_names_missing_binaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(services, "POSTGRES_ROOT", tmp_path)
    with pytest.raises(RuntimeError, match=r"initdb.*apt-get install -y postgresql"), postgres_server():
        pass


# --- Headless Chromium --------------------------------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>report</title>
<style>body { margin: 20px; font-family: sans-serif; } td, th { border: 1px solid #333; padding: 4px; }</style>
</head><body>
<h1>Reproduction report</h1>
<table id="metrics"><tr><th>metric</th><th>value</th></tr><tr><td>mean</td><td>6.0</td></tr></table>
<svg id="chart" width="400" height="200" xmlns="http://www.w3.org/2000/svg">
  <rect x="0" y="0" width="400" height="200" fill="#1f77b4"/><circle cx="200" cy="100" r="60" fill="#ff7f0e"/>
</svg>
<script>document.body.dataset.scripted = "yes";</script>
</body></html>
"""


def test_headless_page_renders_table_and_svg(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(PAGE)
    result = headless_page(page, tmp_path / "out")
    assert '<table id="metrics">' in result.dom
    assert "<td>6.0</td>" in result.dom
    assert '<svg id="chart"' in result.dom and "<circle" in result.dom
    assert 'data-scripted="yes"' in result.dom  # the DOM is taken after scripts ran, not the file's text
    assert result.screenshot == (tmp_path / "out" / "report.png").resolve()
    width, height, _, _ = png_rows(result.screenshot)
    assert (width, height) == services.WINDOW_SIZE
    assert not png_is_blank(result.screenshot)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.png"]  # the profile is gone


def test_headless_page_of_an_empty_page_is_blank(tmp_path: Path) -> None:
    page = tmp_path / "empty.html"
    page.write_text("<!doctype html><html><body style='background: white'></body></html>")
    assert png_is_blank(headless_page(page, tmp_path).screenshot)


def tiny_png() -> bytes:
    return png_bytes(1, 1, [b"\xff\x00\x00"], colour=2, filter_kind=0)


@pytest.fixture
def counting_server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on this host's loopback that serves a 1x1 PNG and records every path requested."""
    requests: list[str] = []
    body = tiny_png()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def probe_page(folder: Path, port: int) -> Path:
    page = folder / "probe.html"
    page.write_text(
        f"""<!doctype html><html><body>
        <img src="http://127.0.0.1:{port}/x.png" onload="document.body.dataset.img = 'loaded'"
             onerror="document.body.dataset.img = 'failed'">
        <script>fetch("http://127.0.0.1:{port}/fetch").catch(() => {{}});</script>
        </body></html>"""
    )
    return page


def test_headless_page_has_no_network(tmp_path: Path, counting_server: tuple[int, list[str]]) -> None:
    port, requests = counting_server
    page = probe_page(tmp_path, port)

    # Control: the same page in the same browser, but in this host's network, does reach the server.
    with tempfile.TemporaryDirectory(dir=tmp_path) as profile:
        control = subprocess.run(
            [services.chromium_binary(), *services.chromium_flags(Path(profile)), "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert control.returncode == 0, control.stderr[-2000:]
    assert 'data-img="loaded"' in control.stdout
    assert "/x.png" in requests
    requests.clear()

    result = headless_page(page, tmp_path / "out")
    assert 'data-img="failed"' in result.dom
    assert requests == []


# --- PNG ----------------------------------------------------------------------------------------------------


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filtered(kind: int, row: bytes, prior: bytes, bpp: int) -> bytes:
    """``row`` encoded with PNG filter ``kind`` (the encoder's side of what the reader undoes)."""

    def predict(i: int) -> int:
        left, up, up_left = (row[i - bpp], prior[i], prior[i - bpp]) if i >= bpp else (0, prior[i], 0)
        return [0, left, up, (left + up) // 2, paeth(left, up, up_left)][kind]

    return bytes([kind]) + bytes((row[i] - predict(i)) & 0xFF for i in range(len(row)))


def png_bytes(width: int, height: int, rows: list[bytes], *, colour: int, filter_kind: int) -> bytes:
    """An 8-bit PNG (colour type 2 RGB or 6 RGBA) whose every scanline uses ``filter_kind``."""
    bpp = {2: 3, 6: 4}[colour]
    assert len(rows) == height and all(len(row) == width * bpp for row in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    prior = bytes(width * bpp)
    raw = b""
    for row in rows:
        raw += filtered(filter_kind, row, prior, bpp)
        prior = row
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return services.PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("filter_kind", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("colour", [2, 6])
def test_png_is_blank_white_and_two_colour(tmp_path: Path, filter_kind: int, colour: int) -> None:
    bpp = {2: 3, 6: 4}[colour]
    white = [b"\xff" * (bpp * 16)] * 9
    path = tmp_path / "white.png"
    path.write_bytes(png_bytes(16, 9, white, colour=colour, filter_kind=filter_kind))
    assert png_is_blank(path)

    one_dot = [*white[:-1], b"\xff" * (bpp * 15) + b"\x00" * bpp]  # one black pixel, bottom right
    path.write_bytes(png_bytes(16, 9, one_dot, colour=colour, filter_kind=filter_kind))
    assert not png_is_blank(path)


@pytest.mark.parametrize("filter_kind", [0, 1, 2, 3, 4])
def test_png_rows_undo_every_filter_exactly(tmp_path: Path, filter_kind: int) -> None:
    width, height = 23, 11
    rows = [
        bytes((x * 37 + y * 91 + c * 53 + x * y) % 256 for x in range(width) for c in range(4)) for y in range(height)
    ]
    path = tmp_path / "noise.png"
    path.write_bytes(png_bytes(width, height, rows, colour=6, filter_kind=filter_kind))
    got_width, got_height, bpp, decoded = png_rows(path)
    assert (got_width, got_height, bpp) == (width, height, 4)
    assert list(decoded) == rows


def test_png_rows_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "not.png"
    path.write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="not a PNG"):
        png_rows(path)
