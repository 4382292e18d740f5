"""What one L-BFGS step of the fill costs, op by op, counted on the CPU from the real code path: the
numbers a GPU user needs to know what to expect.

    python benchmarks/gpu_cost.py [--side 512] [--iters 10] [--profile]

Runs the finest scale of the demo fill (a `side` frame, hole the centre half of each side) for `iters`
L-BFGS iterations, which is one re-match round, and divides by `iters`. Every ATen or npsynth op
dispatched is counted: on a GPU each is at least one kernel launch (cuDNN may add a few per convolution).
FLOPs come from torch's FlopCounterMode (convolutions and matmuls) and, for our ops, from their loops;
"MB" is what each op reads and writes at the least (its tensors' sizes; a kernel re-reading a patch from
cache does not count again), so time >= MB / memory bandwidth and >= GFLOP / FLOP rate. --profile instead
times the same run with torch.profiler on this machine and prints where the time goes, by op.
"""
import argparse
import collections
import os
import sys

import numpy as np
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from npsynth_ext import masks as masks_mod  # noqa: E402
from npsynth_ext.fill import DEMO_IMAGE  # noqa: E402
from npsynth_ext.pipeline import FillOptions, solve_scale  # noqa: E402
from npsynth_ext.vgg import load_texture_net  # noqa: E402


def npsynth_flops(name, args):
    """Multiply-adds x 2 of our kernels, from their loops."""
    if name == "patchmatch":
        target, source, mask, _, k, _, _, iters, _, _ = args
        C, Hs, Ws = source.shape[-3:]
        candidates = 3 + max(1, int(max(Hs, Ws)).bit_length())  # propagation + random-search draws per visit
        return 2 * int(mask.sum()) * (1 + 2 * iters * candidates) * C * k * k
    if name in ("texture_loss", "texture_loss_backward"):
        target, mask, k = (args[0], args[3], args[4]) if name == "texture_loss" else (args[1], args[4], args[5])
        return 3 * int(mask.sum()) * target.shape[-3] * k * k
    return 0


# Ops that only make a new view of the same memory (no kernel), and host-side reads (a sync, no kernel).
NO_KERNEL = {"detach", "view", "unsqueeze", "squeeze", "slice", "select", "expand", "alias", "as_strided",
             "permute", "t", "transpose", "_reshape_alias", "unbind", "split", "_local_scalar_dense",
             "_record_function_enter_new", "_record_function_exit", "lift_fresh"}
SHOWN = 12  # ops listed one by one (by FLOPs, then bytes); the rest are summed in one row


class OpCounter(TorchDispatchMode):
    """Counts every dispatched op with the bytes of its tensor inputs and outputs."""

    def __init__(self):
        super().__init__()
        self.calls = collections.Counter()
        self.bytes = collections.Counter()
        self.flops = collections.Counter()
        self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in NO_KERNEL:
            self.syncs += name == "_local_scalar_dense"
            return out
        tensors = [t for t in torch.utils._pytree.tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)]
        self.calls[name] += 1
        self.bytes[name] += sum(t.numel() * t.element_size() for t in tensors)
        if func.namespace == "npsynth":
            self.flops[name] += npsynth_flops(name, args)
        return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="time the ops with torch.profiler instead")
    args = parser.parse_args()
    n = args.side
    rgb = torch.from_numpy(np.asarray(Image.open(DEMO_IMAGE).convert("RGB").resize((n, n))).copy())
    rgb = rgb.permute(2, 0, 1).float() / 255
    hole = torch.zeros(n, n, dtype=torch.bool)
    hole[n // 4:3 * n // 4, n // 4:3 * n // 4] = True
    inside = torch.ones(n, n, dtype=torch.bool)
    opts = FillOptions(progress=False, rematch_every=args.iters)
    net = load_texture_net()
    # The previous scale (one iteration is enough): its result and its matches, which the finest scale's
    # first re-match refines with PatchMatch, as in a fill.
    coarse_rgb = torch.nn.functional.avg_pool2d(rgb[None], 2)[0]
    coarse, fields = solve_scale(net, coarse_rgb, masks_mod.downscale_mask(hole, n // 2),
                                 torch.ones(n // 2, n // 2, dtype=torch.bool), 1, "cosine", opts, "")
    if args.profile:
        profile(lambda: solve_scale(net, rgb, hole, inside, args.iters, "l2", opts, "", coarse=coarse, fields=fields))
        return
    counter, flop_counter = OpCounter(), FlopCounterMode(display=False)
    with flop_counter, counter:
        solve_scale(net, rgb, hole, inside, args.iters, "l2", opts, "", coarse=coarse, fields=fields)
    # The scale's one-off work (the source features) is in the count too; a GPU user pays it once per scale
    # as well.
    flops = collections.Counter({str(k).split(".")[-1]: v for k, v in flop_counter.get_flop_counts()["Global"].items()})
    flops.update(counter.flops)
    steps = args.iters
    print(f"finest scale of a {n}x{n} frame, hole {n // 2}x{n // 2}, {steps} L-BFGS iterations; per iteration:\n")
    print(f"| {'op':<28} | {'calls':>6} | {'GFLOP':>7} | {'MB':>8} |")
    print(f"|{'-' * 30}|{'-' * 8}|{'-' * 9}|{'-' * 10}|")
    rows = sorted(counter.calls, key=lambda k: (-flops.get(k, 0), -counter.bytes[k]))

    def row(name, calls, gflop, mb):
        print(f"| {name:<28} | {calls / steps:6.1f} | {gflop / 1e9 / steps:7.2f} | {mb / 2**20 / steps:8.1f} |")

    for name in rows[:SHOWN]:
        row(name, counter.calls[name], flops.get(name, 0), counter.bytes[name])
    rest = rows[SHOWN:]
    row(f"{len(rest)} other ops (elementwise)", sum(counter.calls[k] for k in rest), sum(flops.get(k, 0) for k in rest),
        sum(counter.bytes[k] for k in rest))
    row("total", sum(counter.calls.values()), sum(flops.values()), sum(counter.bytes.values()))
    print(f"\nhost reads of device values (.item(), each a GPU sync): {counter.syncs / steps:.1f} per iteration")


def profile(run):
    """Self CPU time per op over one run, largest first."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    print(f"| {'op':<40} | {'calls':>6} | {'self s':>7} | {'share':>6} |")
    print(f"|{'-' * 42}|{'-' * 8}|{'-' * 9}|{'-' * 8}|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:SHOWN]:
        print(f"| {e.key:<40} | {e.count:6d} | {e.self_cpu_time_total / 1e6:7.2f} | "
              f"{e.self_cpu_time_total / total:6.1%} |")
    print(f"| {'total':<40} | {'':6} | {total / 1e6:7.2f} | {1:6.1%} |")


if __name__ == "__main__":
    main()
