"""The HTTP API of python -m npsynth_ext.serve on a real server (uvicorn on 127.0.0.1): the format round trip,
every bad request, the upload limit, a full queue, jobs with their events and cancel, the command line."""
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading

import numpy as np
import pytest
from PIL import Image
from serve_helpers import (FAST, SIDE, bomb_png, box_hole, encode, mask_png, photo_array, require_server_packages,
                           serving, shared_engine)

require_server_packages()

import httpx  # noqa: E402

from npsynth_ext.serve.__main__ import exposure_warning  # noqa: E402
from npsynth_ext.serve.app import MB, create_app  # noqa: E402

LIMIT_MB = 1
QUEUE = 1
TIMEOUT = httpx.Timeout(60)  # every request's bound: a tiny fill waits for at most a few others


@pytest.fixture(scope="module")
def temp_dir(tmp_path_factory):
    """The temporary folder of the server's process during these tests (where uploads are spooled)."""
    folder = tmp_path_factory.mktemp("server_tmp")
    saved, tempfile.tempdir = tempfile.tempdir, str(folder)
    yield folder
    tempfile.tempdir = saved


@pytest.fixture(scope="module")
def api(temp_dir):
    with serving(create_app(shared_engine(), max_upload_bytes=LIMIT_MB * MB, queue_size=QUEUE)) as url:
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            yield client


def post_fill(client, image, mask, **fields):
    files = {}
    if image is not None:
        files["image"] = ("photo", image, "application/octet-stream")
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    return client.post("/api/v1/fill", files=files, data={**FAST, **fields})


def changed_pixels(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return (a != b).reshape(a.shape[0], a.shape[1], -1).any(-1)


def grey16(photo):
    return Image.fromarray(photo[..., 0].astype(np.uint16) * 257)


def rgba(photo):
    alpha = np.full(photo.shape[:2], 255, np.uint8)
    alpha[:, :20] = 90  # part transparent: the alpha must come back byte for byte
    return Image.fromarray(np.dstack([photo, alpha]))


KINDS = {  # name: (the photo as a PIL image, format)
    "png_rgb": (lambda p: Image.fromarray(p), "PNG"),
    "png_grey": (lambda p: Image.fromarray(p[..., 1]), "PNG"),
    "png_rgba": (rgba, "PNG"),
    "png_grey16": (grey16, "PNG"),
    "tiff_rgb": (lambda p: Image.fromarray(p), "TIFF"),
    "webp_lossless_rgba": (rgba, "WEBP"),
    "bmp_rgb": (lambda p: Image.fromarray(p), "BMP"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_lossless_round_trip(api, kind):
    """The answer is the photo in its own format and kind, every byte outside the hole unchanged."""
    make, fmt = KINDS[kind]
    source = make(photo_array())
    options = {"lossless": True} if fmt == "WEBP" else {}
    sent = Image.open(io.BytesIO(encode(source, fmt, **options)))
    hole = box_hole()
    response = post_fill(api, encode(source, fmt, **options), mask_png(hole))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == Image.MIME[fmt]
    out = Image.open(io.BytesIO(response.content))
    assert (out.format, out.mode, out.size) == (fmt, sent.mode, sent.size)
    changed = changed_pixels(out, sent)
    assert not changed[~hole].any(), "bytes outside the hole changed"
    assert changed[hole].mean() > 0.5, "the hole was not filled"


def test_gif_comes_back_as_png(api):
    """A GIF's 256 colours could not hold the fill without changing pixels outside the hole: PNG instead."""
    sent = Image.fromarray(photo_array()).quantize(64)
    hole = box_hole()
    response = post_fill(api, encode(sent, "GIF"), mask_png(hole))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png" and "photo_filled.png" in response.headers["content-disposition"]
    out = Image.open(io.BytesIO(response.content))
    assert not changed_pixels(out.convert("RGB"), sent.convert("RGB"))[~hole].any()


def test_jpeg_round_trip(api):
    """A JPEG comes back as a JPEG (re-encoded: near, not equal, outside the hole), upright, EXIF kept."""
    photo = photo_array()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: shown rotated 90 degrees clockwise
    exif[0x010F] = "npsynth test camera"
    sent = encode(photo, "JPEG", quality=98, exif=exif)
    upright = np.rot90(np.asarray(Image.open(io.BytesIO(sent))), -1)  # as a viewer shows it: as the mask is drawn
    hole = box_hole()
    response = post_fill(api, sent, mask_png(hole))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert "photo_filled.jpg" in response.headers["content-disposition"]
    out = Image.open(io.BytesIO(response.content))
    assert out.format == "JPEG" and out.size == (SIDE, SIDE)
    assert out.getexif().get(0x0112) is None and out.getexif()[0x010F] == "npsynth test camera"
    error = np.abs(np.asarray(out).astype(int) - upright)[~hole].mean()
    assert error < 3, f"outside the hole the JPEG is {error:.1f} levels off: not the same photo, upright"


@pytest.mark.parametrize("image,mask,fields,status,message", [
    (b"hello, not an image", "hole", {}, 400, r"^image: not an image"),
    ("photo", b"GIF89a but no more", {}, 400, r"^mask: not an image"),
    ("photo", "small", {}, 422, r"mask is 96x95 but the image is 96x96"),
    ("photo", "empty", {}, 422, r"mask is empty"),
    ("photo", "full", {}, 422, r"mask covers the whole image"),
    ("photo", "hole", {"nonsense": "1"}, 422, r"unknown option nonsense; known: seed, iters"),
    ("photo", "hole", {"vgg_weights": "/etc/passwd"}, 422, r"unknown option vgg_weights"),
    ("photo", "hole", {"iters": "1 2"}, 422, r"option iters='1 2': give 3 integers"),
    ("photo", "hole", {"alpha": "lots"}, 422, r"option alpha='lots'"),
    ("photo", "hole", {"alpha": "-1"}, 422, r"alpha and beta must be >= 0"),
    ("photo", "hole", {"content": "magic"}, 422, r"option content='magic'"),
    ("photo", None, {}, 422, r"^mask: missing"),
    (None, "hole", {}, 422, r"^image: missing"),
    ("bomb", "hole", {}, 422, r"^image: refused as a possible decompression bomb"),
    ("photo", "bomb", {}, 422, r"^mask: refused as a possible decompression bomb"),
    ("cmyk", "hole", {}, 422, r"^image: CMYK is not supported"),
])
def test_bad_requests(api, temp_dir, image, mask, fields, status, message):
    """Each bad request gets its 4xx and a JSON body naming the problem; nothing is left on disk."""
    photo = photo_array()
    images = {"photo": encode(photo), "bomb": bomb_png(), "cmyk": encode(Image.fromarray(photo).convert("CMYK"), "JPEG")}
    hole = box_hole()
    masks = {"hole": hole, "small": hole[:-1], "empty": hole & False, "full": hole | True}
    image = images.get(image, image)
    mask = mask_png(masks[mask]) if mask in masks else images.get(mask, mask)
    before = set(os.listdir(temp_dir))
    response = post_fill(api, image, mask, **fields)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert re.search(message, response.json()["detail"]), response.json()
    assert api.get("/").status_code == 200, "the server stopped serving"
    assert set(os.listdir(temp_dir)) == before, "a temporary file was left behind"


def test_upload_over_the_limit(api, temp_dir):
    """413 for a body over --max-upload-mb: declared (Content-Length) or sent in chunks without one."""
    before = set(os.listdir(temp_dir))
    big = np.random.default_rng(1).integers(0, 256, (700, 700, 3), np.uint8)  # a PNG of about 1.5 MB
    response = post_fill(api, encode(big), mask_png(box_hole(700)))
    assert response.status_code == 413, response.text
    assert "larger than this server's limit of 1 MB" in response.json()["detail"]

    body = (b"--cut\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
            + encode(big) + b"\r\n--cut--\r\n")
    chunked = api.post("/api/v1/fill", content=(body[i:i + 65536] for i in range(0, len(body), 65536)),
                       headers={"content-type": "multipart/form-data; boundary=cut"})
    assert chunked.status_code == 413, chunked.text
    assert "content-length" not in chunked.request.headers
    assert api.get("/").status_code == 200
    assert set(os.listdir(temp_dir)) == before


def test_eight_requests_at_once(api):
    """8 fills sent together: each is answered, a fill (200) or the full queue's 429, and the server lives."""
    photo, hole = photo_array(), box_hole()
    image, mask = encode(photo), mask_png(hole)
    go = threading.Barrier(8)
    answers = [None] * 8

    def send(i):
        go.wait()
        try:
            answers[i] = post_fill(api, image, mask, seed=str(i))
        except httpx.HTTPError as exc:
            answers[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    codes = sorted(a.status_code if isinstance(a, httpx.Response) else repr(a) for a in answers)
    assert set(codes) <= {200, 429} and 200 in codes and 429 in codes, codes
    for answer in answers:
        if answer.status_code == 429:
            assert "busy" in answer.json()["detail"] and answer.headers["retry-after"]
        else:
            assert not changed_pixels(Image.open(io.BytesIO(answer.content)), photo)[~hole].any()
    assert post_fill(api, image, mask).status_code == 200, "the server does not fill any more"


def read_events(client, url):
    """[(event, data)] of a job's event stream, to its end."""
    import json

    found, name = [], None
    with client.stream("GET", url) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                found.append((name, json.loads(line[len("data: "):])))
    return found


def start_job(client, **fields):
    response = client.post("/api/v1/jobs", files={"image": ("a.png", encode(photo_array())),
                                                  "mask": ("m.png", mask_png(box_hole()))}, data={**FAST, **fields})
    assert response.status_code == 202, response.text
    return response.json()


def test_job_progress_and_result(api):
    job = start_job(api)
    events = read_events(api, job["events"])
    assert events[-1][0] == "done", events
    progress = [data for name, data in events if name == "progress"]
    assert progress and all(0 <= p["fraction"] <= 1 for p in progress)
    assert any(re.match(r"scale \d/\d \(\d+px\)", p["label"]) for p in progress), progress
    result = api.get(job["result"])
    assert result.status_code == 200 and Image.open(io.BytesIO(result.content)).format == "PNG"
    assert api.get(job["result"]).status_code == 404, "a result is given once"


def test_cancel_a_waiting_job(api):
    running = start_job(api)
    waiting = start_job(api)
    assert api.delete(f"/api/v1/jobs/{waiting['id']}").status_code == 204
    assert read_events(api, waiting["events"])[-1][0] == "cancelled"
    assert api.get(waiting["result"]).status_code == 409
    assert read_events(api, running["events"])[-1][0] == "done"
    assert api.delete("/api/v1/jobs/no-such-job").status_code == 404


def test_openapi_docs(api):
    assert api.get("/docs").status_code == 200
    schema = api.get("/openapi.json").json()
    body = schema["paths"]["/api/v1/fill"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"image", "mask", "iters", "seed"} <= set(body["properties"]) and body["required"] == ["image", "mask"]


def test_the_page_and_its_files_are_served(api):
    page = api.get("/").text
    for test_id in ("file-input", "canvas", "brush-size", "fill-button", "undo", "redo", "progress", "download",
                    "error"):
        assert f'data-testid="{test_id}"' in page
    for asset in re.findall(r'(?:src|href)="(static/[^"]+)"', page):
        assert api.get("/" + asset).status_code == 200, asset


def test_warning_beyond_this_machine():
    assert exposure_warning("127.0.0.1") is None and exposure_warning("::1") is None
    assert exposure_warning("localhost") is None
    assert "anyone who can reach" in exposure_warning("0.0.0.0")
    assert "anyone who can reach" in exposure_warning("192.168.1.20")


def test_serve_command(tmp_path):
    """python -m npsynth_ext.serve prints its address, serves, and stops on Ctrl-C; bad arguments: one line."""
    import npsynth_ext

    # The package these tests use (installed, or this checkout), run from elsewhere: `python -m` puts the
    # current folder first, and a source checkout there has no built extension.
    here = os.path.dirname(os.path.dirname(os.path.abspath(npsynth_ext.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "npsynth_ext.serve"]
    bad = subprocess.run(command + ["--max-upload-mb", "0"], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "--max-upload-mb: must be a number above 0" in bad.stderr
    server = subprocess.Popen(command + ["--port", "0"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        address = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
        assert address, (line, server.stderr.read() if server.poll() is not None else "")
        assert 'data-testid="canvas"' in httpx.get(address.group(1), timeout=10).text
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 130  # the shell's code for Ctrl-C
        assert "the server has stopped" in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()
        server.stderr.close()


def test_docs_list_every_option():
    from npsynth_ext.serve.engine import OPTIONS

    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "api.md")) as f:
        documented = set(re.findall(r"^\| `(\w+)` \|", f.read(), re.M))
    assert set(OPTIONS) <= documented, f"docs/api.md lacks {sorted(set(OPTIONS) - documented)}"
