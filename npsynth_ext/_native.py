"""Loads the compiled extension, which registers torch.ops.npsynth.*, with a clear error when it is missing."""
import functools

import torch

try:
    from . import _C  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    raise ImportError(
        "npsynth_ext's native extension (npsynth_ext._C) is not built. Install the package with "
        "`pip install --no-build-isolation .` (or `-e .` for development); if it is installed, run Python "
        f"outside the source folder so the installed copy is imported. Original error: {exc}"
    ) from exc


@functools.cache
def compiled_config() -> dict:
    """The binary's own "key=value" lines about how it was compiled (csrc/npsynth.cpp's build_info)."""
    return dict(line.split("=", 1) for line in torch.ops.npsynth.build_info().splitlines() if "=" in line)
