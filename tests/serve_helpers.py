"""What the server's tests share: tiny photos and masks as file bytes, a decompression bomb, and a server
run in a thread on 127.0.0.1 (a free port), stopped when the test is done."""
import contextlib
import importlib.util
import io
import os
import socket
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

SERVER_PACKAGES = ("fastapi", "uvicorn", "multipart", "httpx")  # the serve extra, and the tests' client

FAST = {"iters": "2 0 0", "pixel_rounds": "1"}  # the server's form fields for a quick fill
SIDE = 96


def photo_array(side=SIDE, seed=0):
    """A textured (side, side, 3) uint8 photo: smooth gradients with noise, so a fill has something to copy."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side]
    base = np.stack([x * 2, y * 2, (x + y)], -1) % 256
    return np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)


def box_hole(side=SIDE, y0=40, y1=52, x0=30, x1=60):
    hole = np.zeros((side, side), bool)
    hole[y0:y1, x0:x1] = True
    return hole


def encode(array_or_image, fmt="PNG", **options):
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def mask_png(hole):
    return encode((hole * 255).astype(np.uint8))


def bomb_png(width=20000, height=20000):
    """A PNG of some 100 bytes whose header claims width x height pixels (400 million by default)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


@contextlib.contextmanager
def serving(app):
    """Run ASGI `app` with uvicorn in a thread on 127.0.0.1 at a free port; yields its base URL and stops
    the server (and its fill worker) on leaving."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):  # bounded: up to 10 s for the server to start
            if server.started or not thread.is_alive():
                break
            time.sleep(0.05)
        assert server.started, "the test server did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive(), "the test server did not stop"


_engines = {}


def shared_engine():
    """One serve Engine (VGG loaded on the CPU) for every test of the session."""
    from npsynth_ext.serve.engine import Engine

    if "cpu" not in _engines:
        _engines["cpu"] = Engine("cpu")
    return _engines["cpu"]


def require_server_packages():
    """Skip the calling test module when the server's packages are missing (pip install fastapi uvicorn
    python-multipart httpx), except where NPSYNTH_EXPECT_BROWSER=1 (CI, where the whole page is tested):
    there it fails."""
    missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
    if not missing:
        return
    why = f"the server's packages are not installed: {', '.join(missing)}"
    if os.environ.get("NPSYNTH_EXPECT_BROWSER") == "1":
        pytest.fail(f"NPSYNTH_EXPECT_BROWSER=1 but {why}", pytrace=False)
    pytest.skip(why, allow_module_level=True)
