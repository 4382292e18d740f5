"""A local web page to paint a hole over a photo and fill it, and the HTTP API under it.

    python -m npsynth_ext.serve [--host 127.0.0.1] [--port 8000] [--device cpu|cuda] [--max-upload-mb 50]

Needs the `serve` extra (pip install fastapi uvicorn python-multipart). The API is in docs/api.md."""
