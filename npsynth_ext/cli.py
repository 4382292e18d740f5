"""What the two command lines (fill, train_content) share: how a failure is reported, and the check that
their output can be written, made before any work."""
import os
import sys


def check_writable(path):
    """Raise ValueError unless a file can be written at `path`: its folder exists and is writable, and
    the path itself is not a folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"output folder is not writable: {folder}")
    if os.path.isdir(path):
        raise ValueError(f"output {path} is a folder")


def run_command(prog, work, args, errors, on_interrupt):
    """work(args), whose return value (None for 0) is the exit code; the expected `errors` become one line
    on stderr and exit code 2 (never a traceback), and Ctrl-C exit code 130 with `on_interrupt` said."""
    try:
        code = work(args)
    except errors as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {on_interrupt}", file=sys.stderr)
        return 130
    return code or 0
