"""Each op against its pure-PyTorch reference, measured side by side in one run, at the paper's shapes.

    python benchmarks/compare.py [--device cpu|cuda] [--repeats N] [--no-fill | --fill-only | --search-only]
                                 [--vgg-precision auto|float32|bfloat16 ...]

Prints the median time of each, the speed-up (reference time / ours), the rate of exact search in useful
GFLOP/s (the reference's flop count over our time), and the peak extra memory while the call runs: on the
CPU the rise of the process's peak resident set (malloc is told to return big blocks to the OS at once, so
freed-and-reused memory is not hidden); on CUDA torch's peak allocated memory. Then, each
in a fresh process with the default allocator: PatchMatch against exact search on the demo photo's VGG
features (time and mean-distance gap), and the end-to-end demo fill at 128, 256 and 512, once per
--vgg-precision given (default: the fill's default), all against the same VGG unit.
"""
import argparse
import ctypes
import gc
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import SHAPES, patch_nn_call, patch_nn_gflop, search_calls, texture_loss_call  # noqa: E402

import npsynth_ext  # noqa: E402
from npsynth_ext.vgg import PRECISIONS  # noqa: E402

# name: (factory of the timed call, its GFLOP count or None)
OPS = {
    "patch_nn l2": (patch_nn_call, patch_nn_gflop),
    "patch_nn cosine": (lambda impl, shape, device: patch_nn_call(impl, shape, device, "cosine"), patch_nn_gflop),
    "texture_loss fwd+bwd": (texture_loss_call, None),
}
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


LIBC = _libc()


def _status_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def peak_extra_mb(fn, device):
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    if LIBC is None or not os.path.exists("/proc/self/clear_refs"):
        return float("nan")
    LIBC.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set (VmHWM) to the current one
    base = _status_mb("VmRSS")
    fn()
    return _status_mb("VmHWM") - base


def median_seconds(fn, device, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return f"{cpu}, {torch.get_num_threads()} threads"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-fill", action="store_true", help="skip the end-to-end fill timing")
    parser.add_argument("--fill-only", action="store_true", help="only the end-to-end fill timing")
    parser.add_argument("--search-only", action="store_true", help="only the PatchMatch vs patch_nn table")
    parser.add_argument("--vgg-precision", nargs="+", choices=PRECISIONS,
                        default=[npsynth_ext.FillOptions.vgg_precision],
                        help="the fill's FillOptions.vgg_precision; several: one fill table each")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is visible")
    if args.fill_only:
        end_to_end_fill(args.device, args.repeats, args.vgg_precision)
        return
    if args.search_only:
        search_table(args.device, args.repeats)
        return
    if LIBC is not None and args.device == "cpu":
        LIBC.mallopt(M_MMAP_THRESHOLD, 64 * 1024)

    print(f"machine: {machine(args.device)}; torch {torch.__version__}; build {npsynth_ext.build_info()}")
    print(f"median of {args.repeats} runs after one warm-up; memory = peak extra during one call\n")
    header = f"| {'op':<21} | {'shape':<12} | {'ours ms':>9} | {'ref ms':>9} | {'speed-up':>8} | " \
             f"{'ours MB':>8} | {'ref MB':>8} | {'ours GFLOP/s':>12} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for op, (factory, gflop) in OPS.items():
        for shape in SHAPES:
            res = {}
            for impl in ("ours", "reference"):
                fn = factory(impl, shape, args.device)
                fn()
                mem = peak_extra_mb(fn, args.device)
                res[impl] = (median_seconds(fn, args.device, args.repeats), mem)
                del fn
            (t_ours, m_ours), (t_ref, m_ref) = res["ours"], res["reference"]
            rate = f"{gflop(shape) / t_ours:12.0f}" if gflop else " " * 12
            print(f"| {op:<21} | {shape:<12} | {t_ours * 1e3:9.1f} | {t_ref * 1e3:9.1f} | {t_ref / t_ours:7.1f}x | "
                  f"{m_ours:8.1f} | {m_ref:8.1f} | {rate} |", flush=True)
    # The search table and the fills run in fresh processes: the malloc setting that makes the memory
    # column honest (every large block mapped and unmapped) slows a whole fill's allocations down by a
    # third, and PatchMatch's ~60 ms calls by a quarter.
    for part in ("--search-only",) + (() if args.no_fill else ("--fill-only",)):
        sys.stdout.flush()
        subprocess.run([sys.executable, os.path.abspath(__file__), part, "--device", args.device,
                        "--repeats", str(args.repeats), "--vgg-precision", *args.vgg_precision], check=True)


def search_table(device, repeats):
    """PatchMatch against exact search on the demo photo's VGG features: time and mean-distance gap."""
    print("\nnearest-neighbour search on the demo photo's VGG features (l2); gap = mean distance / exact - 1")
    header = f"| {'shape':<12} | {'search':<16} | {'ms':>8} | {'vs patch_nn':>11} | {'gap':>7} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for shape in SHAPES:
        calls = search_calls(shape, device)
        times = {}
        for name, (fn, gap) in calls.items():
            fn()
            times[name] = median_seconds(fn, device, repeats)
            print(f"| {shape:<12} | {name:<16} | {times[name] * 1e3:8.1f} | "
                  f"{times['patch_nn'] / times[name]:10.1f}x | {gap() - 1:+7.2%} |", flush=True)


def vgg_unit_seconds(net, device, repeats):
    """Median seconds of one VGG-19 forward+backward to relu4_1 on a 512x512 image, in float32 whatever
    the fill's vgg_precision: the unit fill times are given in, so machines of different speed compare."""
    x = torch.rand(1, 3, 512, 512, device=device, requires_grad=True)

    def once():
        sum(f.square().mean() for f in net(x).values()).backward()

    once()
    return median_seconds(once, device, repeats)


def dtype_name(precision, device):
    """The dtype VGG runs in for FillOptions.vgg_precision `precision` on `device`, e.g. 'bfloat16'."""
    from npsynth_ext.vgg import compute_dtype

    return str(compute_dtype(precision, device)).removeprefix("torch.")


def end_to_end_fill(device, repeats, precisions):
    """The demo fill (photo with a centre hole half its side) with default options at frames of 128, 256
    and 512, for each of `precisions` (FillOptions.vgg_precision): median total and the per-scale split of
    the median run."""
    import numpy as np
    from PIL import Image

    from npsynth_ext.fill_command import DEMO_IMAGE, DEMO_MASK
    from npsynth_ext.options import FillOptions
    from npsynth_ext.pipeline import fill_u8
    from npsynth_ext.vgg import load_texture_net

    net = load_texture_net(device=device)
    unit = vgg_unit_seconds(net, device, repeats)
    frames = {side: (np.asarray(Image.open(DEMO_IMAGE).convert("RGB").resize((side, side), Image.BICUBIC)).copy(),
                     np.asarray(Image.open(DEMO_MASK).resize((side, side), Image.NEAREST)) > 0)
              for side in (128, 256, 512)}
    for precision in precisions:
        print(f"\nend-to-end fill of the demo photo (hole: the centre half of each side), default options, "
              f"vgg_precision {precision} (VGG in {dtype_name(precision, device)}), {repeats} runs; VGG unit "
              f"(float32 VGG-19 forward+backward to relu4_1 at 512x512, this process): {unit * 1e3:.1f} ms")
        for side, (image, hole) in frames.items():
            runs = []
            for _ in range(repeats):
                timings = {}
                start = time.perf_counter()
                fill_u8(image, hole, FillOptions(device=device, progress=False, vgg_precision=precision), timings,
                        net=net)
                runs.append((time.perf_counter() - start, timings))
            runs.sort(key=lambda r: r[0])
            total, timings = runs[len(runs) // 2]
            split = ", ".join(f"{stage if isinstance(stage, str) else f'{stage}px'} {seconds:.1f} s"
                              for stage, seconds in timings.items())
            every = ", ".join(f"{r[0]:.1f}" for r in runs)
            print(f"  {side}x{side}: median {total:.1f} s = {total / unit:.1f} VGG units ({split}); all runs "
                  f"{every} s", flush=True)


if __name__ == "__main__":
    main()
