"""python -m npsynth_ext.serve: load VGG once on --device, then serve the page and the API at --host:--port
until Ctrl-C. Bad arguments give one line and exit code 2."""
import argparse
import ipaddress
import socket
import sys

from npsynth_ext.cli import run_command

from .app import DEFAULT_MAX_UPLOAD_MB, DEFAULT_QUEUE, MB

PROG = "python -m npsynth_ext.serve"
GRACE_S = 5


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default %(default)s; 0: any free one)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where fills run")
    p.add_argument("--max-upload-mb", type=positive(float), default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                   help="largest request body accepted, photo and mask together (default %(default)s)")
    p.add_argument("--queue", type=positive(int), default=DEFAULT_QUEUE, metavar="N",
                   help="fills that may wait while one runs; more are answered 429 (default %(default)s)")
    return p


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}")
        return value
    return parse


def is_loopback(host):
    """Whether `host` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host):
    """The warning printed when the server listens beyond this machine, or None."""
    if is_loopback(host):
        return None
    return (f"{PROG}: warning: listening on {host}: anyone who can reach this address can use the server "
            "(it has no login); use --host 127.0.0.1 to keep it to this machine")


def open_socket(host, port):
    """A listening socket at host:port, or OSError saying why not (port taken, unknown address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def run(args):
    import uvicorn

    from .app import create_app
    from .engine import Engine

    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise ValueError("--device cuda requested but no CUDA GPU is available")
    warning = exposure_warning(args.host)
    sock = open_socket(args.host, args.port)
    try:
        engine = Engine(args.device)
        app = create_app(engine, int(args.max_upload_mb * MB), args.queue)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"npsynth_ext.serve: open http://{shown}:{port}/ (API docs at /docs); Ctrl-C stops", flush=True)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        # Ctrl-C: open requests (a page following a fill) get a few seconds, then the fills are cancelled.
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=GRACE_S)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_command("npsynth_ext.serve", run, args, (OSError, ValueError), "the server has stopped")


if __name__ == "__main__":
    sys.exit(main())
