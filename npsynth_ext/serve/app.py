"""The HTTP API and the page: create_app(engine, ...) returns the ASGI application.

    GET  /                         the page (static/index.html and its script and style)
    POST /api/v1/fill              multipart image + mask (+ options): the filled photo, in its own format
    POST /api/v1/jobs              the same fill as a job: 202 and its id, for the page's progress and cancel
    GET  /api/v1/jobs/{id}/events  server-sent events: progress per level, then done / failed / cancelled
    GET  /api/v1/jobs/{id}/result  the finished job's photo (once: the job is then forgotten)
    DELETE /api/v1/jobs/{id}       cancel the job
    GET  /docs, /openapi.json      the API's OpenAPI description

Every bad request is answered with a 4xx and {"detail": "<the problem>"}: it never reaches the fill."""
import asyncio
import json
import os
from contextlib import asynccontextmanager
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from .engine import OPTIONS, parse_options
from .jobs import CANCELLED, DONE, FillQueue, QueueFull
from .photos import BadUpload, encode_result, read_mask, read_upload

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
MB = 1 << 20
DEFAULT_MAX_UPLOAD_MB = 50
DEFAULT_QUEUE = 4  # fills that may wait while one runs
DISCONNECT_CHECK_S = 1.0  # how often a waiting POST /api/v1/fill looks whether its client has gone

FILL_REQUEST = {  # the multipart body, for the OpenAPI description (the handler reads the form itself)
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["image", "mask"],
        "properties": {
            "image": {"type": "string", "format": "binary",
                      "description": "the photo: any format Pillow reads; the result comes back in it"},
            "mask": {"type": "string", "format": "binary",
                     "description": "an image of the photo's size: hole where its brightest channel is at "
                                    "least half-bright (white = hole)"},
            **{name: {"type": "string", "description": about} for name, (_, about) in OPTIONS.items()},
        }}}},
}
IMAGE_ANSWER = {"content": {"image/*": {}}, "description": "the filled photo, in the uploaded photo's format"}
PROBLEM = {"model": None, "description": "{\"detail\": the problem}"}


def create_app(engine, max_upload_bytes=DEFAULT_MAX_UPLOAD_MB * MB, queue_size=DEFAULT_QUEUE):
    """The application, filling with `engine` (engine.Engine) one photo at a time; at most `queue_size`
    fills wait, request bodies are at most `max_upload_bytes`."""
    fills = FillQueue(queue_size)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        await run_in_threadpool(fills.close)

    app = FastAPI(title="npsynth_ext", version="1", lifespan=lifespan,
                  description="Fill holes in photos by multi-scale neural patch synthesis. Docs: docs/api.md.")

    async def submit(request):
        form = await request.form()
        upload, hole, options = await run_in_threadpool(check_request, form)
        try:
            return fills.submit(lambda on_progress: encode_result(
                upload, engine.fill(upload.photo.rgb, hole, options, on_progress), hole))
        except QueueFull:
            raise HTTPException(429, f"the server is busy: {queue_size} fills are waiting; try again later",
                                headers={"Retry-After": "5"}) from None

    errors = {400: PROBLEM, 413: PROBLEM, 422: PROBLEM, 429: PROBLEM}

    @app.post("/api/v1/fill", summary="Fill a photo's hole and return the photo",
              responses={200: IMAGE_ANSWER, 500: PROBLEM, **errors}, response_class=Response,
              openapi_extra={"requestBody": FILL_REQUEST})
    async def fill(request: Request):
        job = await submit(request)
        try:
            while True:
                seen = job.version  # read before `finished`: a change in between ends the wait at once
                if job.finished:
                    return answer(job)
                try:
                    await asyncio.wait_for(job.next_change(seen), DISCONNECT_CHECK_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        job.cancel()
                        return Response(status_code=499)  # nginx's "client closed request": no one reads it
        finally:
            fills.forget(job.id)

    @app.post("/api/v1/jobs", status_code=202, summary="Start a fill; follow it with its events",
              responses=errors, openapi_extra={"requestBody": FILL_REQUEST})
    async def start(request: Request):
        job = await submit(request)
        base = f"/api/v1/jobs/{job.id}"
        return {"id": job.id, "events": f"{base}/events", "result": f"{base}/result"}

    @app.get("/api/v1/jobs/{job_id}/events", summary="A job's progress as server-sent events",
             response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}}, 404: PROBLEM})
    async def events(job_id: str):
        job = known(job_id)

        async def stream():
            seen = None
            while True:
                version = job.version
                if version != seen:
                    seen = version
                    if job.finished:
                        yield event(job.state, {"detail": job.error, "label": job.label})
                        return
                    yield event("progress", {"fraction": job.fraction, "label": job.label})
                await job.next_change(seen)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.get("/api/v1/jobs/{job_id}/result", summary="A finished job's photo", response_class=Response,
             responses={200: IMAGE_ANSWER, 404: PROBLEM, 409: PROBLEM, 500: PROBLEM})
    def result(job_id: str):
        job = known(job_id)
        if not job.finished:
            raise HTTPException(409, f"job {job_id} is still {job.state}")
        fills.forget(job_id)
        return answer(job)

    @app.delete("/api/v1/jobs/{job_id}", status_code=204, summary="Cancel a job", responses={404: PROBLEM})
    def cancel(job_id: str):
        known(job_id).cancel()
        return Response(status_code=204)

    def known(job_id):
        job = fills.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id} (unknown, or its result was already taken)")
        return job

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(os.path.join(STATIC, "index.html"))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return UploadLimit(app, max_upload_bytes)


def check_request(form):
    """(upload, hole, options) of a fill's form, or HTTPException naming what is wrong with it."""
    fields = dict(form.multi_items())
    options = {name: value for name, value in fields.items() if name not in ("image", "mask")}
    for name in ("image", "mask"):
        if not isinstance(fields.get(name), UploadFile):
            raise HTTPException(422, f"{name}: missing; send it as a file field of a multipart form")
    not_text = [name for name, value in options.items() if not isinstance(value, str)]
    try:
        if not_text:
            raise ValueError(f"option {not_text[0]}: give it as a text field, not a file")
        options = parse_options(options)
        upload = read_upload(fields["image"].file.read(), fields["image"].filename)
        hole = read_mask(fields["mask"].file.read(), upload.photo.rgb.shape[:2])
    except BadUpload as exc:
        raise HTTPException(exc.status, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return upload, hole, options


def answer(job):
    """The response for a finished job: its photo, or why there is none."""
    if job.state == DONE:
        data, media_type, name = job.result
        return Response(data, media_type=media_type,
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})
    if job.state == CANCELLED:
        raise HTTPException(409, "the fill was cancelled")
    raise HTTPException(500, job.error)


def event(name, data):
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


class UploadTooLarge(HTTPException):
    def __init__(self, limit):
        super().__init__(413, f"the upload is larger than this server's limit of {limit / MB:g} MB "
                              "(python -m npsynth_ext.serve --max-upload-mb)")


class UploadLimit:
    """ASGI middleware: a request whose body is over `limit` bytes gets 413. A declared Content-Length over
    it is answered before anything is read; a body without one is counted as it arrives."""

    def __init__(self, app, limit):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            too_large = UploadTooLarge(self.limit)
            return await JSONResponse({"detail": too_large.detail}, 413)(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise UploadTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)
