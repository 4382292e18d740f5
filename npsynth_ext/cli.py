"""What the two command lines (fill, train_content) share: how a failure is reported."""
import sys


def run_command(prog, work, args, errors, on_interrupt):
    """work(args), turning the expected `errors` into one line on stderr and exit code 2 (never a
    traceback), and Ctrl-C into exit code 130 with `on_interrupt` said."""
    try:
        work(args)
    except errors as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {on_interrupt}", file=sys.stderr)
        return 130
    return 0
