"""`python -m npsynth_ext.fill`: runs the command line (its code and documentation: fill_command.py).

The name npsynth_ext.fill is the fill() function, so this module is only run, never imported: an import
would rebind that name to the module. It says so instead."""
import sys

if __name__ != "__main__":
    raise ImportError("npsynth_ext.fill is the fill() function; the command line is `python -m npsynth_ext.fill` "
                      "and its code is npsynth_ext.fill_command")

from npsynth_ext.fill_command import main  # noqa: E402

sys.exit(main())
