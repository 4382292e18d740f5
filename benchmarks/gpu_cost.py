"""What one L-BFGS step of the fill costs, op by op, counted on the CPU from the real code path: the
numbers a GPU user needs to know what to expect.

    python benchmarks/gpu_cost.py [--side 512] [--iters 10] [--profile] [--device cuda | --emulated-cuda]

Runs the finest scale of the demo fill (a `side` frame, hole the centre half of each side) for `iters`
L-BFGS iterations, which is one re-match round, and divides by `iters`. (The default fill gives the
finest level no iterations; run with --side 256 for its largest optimised level, or read this as what
each iteration costs when the finest level is given some.) Every ATen or npsynth op
dispatched is counted: on a GPU each is at least one kernel launch (cuDNN may add a few per convolution).
FLOPs come from torch's FlopCounterMode (convolutions and matmuls) and, for our ops, from their loops;
"MB" is what each op reads and writes at the least (its tensors' sizes; a kernel re-reading a patch from
cache does not count again), so time >= MB / memory bandwidth and >= GFLOP / FLOP rate. --profile instead
times the same run with torch.profiler on this machine and prints where the time goes, by op.

Host reads of device values (each a GPU sync) are counted twice over: inside our ops (the host-read ops
they dispatch: .item(), nonzero, masked_select) and everywhere else (L-BFGS's line search, the
pipeline's once-per-scale reads). Ours must be 0 on CUDA. --emulated-cuda shows it without a GPU: our ops
then run their CUDA code path (the CUDA kernels under the host's CUDA emulator; a build with
NPSYNTH_CUDA_EMULATION=1; slow, so use a small --side such as 128). --device cuda runs on a GPU, where
torch.cuda.set_sync_debug_mode also reports every sync and the Python stack tells whose it is.
"""
import argparse
import collections
import contextlib
import os
import sys
import traceback
import warnings

import numpy as np
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from npsynth_ext import masks as masks_mod  # noqa: E402
from npsynth_ext import ops  # noqa: E402
from npsynth_ext.fill_command import DEMO_IMAGE  # noqa: E402
from npsynth_ext import optimise as optimise_mod  # noqa: E402
from npsynth_ext.optimise import optimise  # noqa: E402
from npsynth_ext.options import FillOptions  # noqa: E402
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


# Ops whose result the host must read from the device: each waits for the GPU.
HOST_READS = {"_local_scalar_dense", "item", "is_nonzero", "nonzero", "masked_select"}
OUR_NAMESPACES = ("npsynth", "npsynth_emu")


class OpCounter(TorchDispatchMode):
    """Counts every dispatched op with the bytes of its tensor inputs and outputs, and the host reads inside
    our ops (`our_syncs`, seen by running our ops' kernels with this mode active again) and outside them
    (`syncs`)."""

    def __init__(self):
        super().__init__()
        self.calls = collections.Counter()
        self.bytes = collections.Counter()
        self.flops = collections.Counter()
        self.syncs = 0
        self.our_syncs = collections.Counter()  # by our op
        self.inside_ours = None  # the name of our op running now

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if self.inside_ours:
            self.our_syncs[self.inside_ours] += name in HOST_READS
            return func(*args, **(kwargs or {}))
        if func.namespace in OUR_NAMESPACES:
            out = self.run_ours(func, args, kwargs)
        else:
            out = func(*args, **(kwargs or {}))
        if name in NO_KERNEL:
            self.syncs += name in HOST_READS
            return out
        self.syncs += name in HOST_READS
        tensors = [t for t in torch.utils._pytree.tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)]
        self.calls[name] += 1
        self.bytes[name] += sum(t.numel() * t.element_size() for t in tensors)
        if func.namespace in OUR_NAMESPACES:
            self.flops[name] += npsynth_flops(name, args)
        return out

    def run_ours(self, func, args, kwargs):
        """Our op's kernel, called below this mode's dispatch key with the mode active again, so the ops
        it dispatches come back here."""
        device = next(t.device for t in torch.utils._pytree.tree_leaves(args) if isinstance(t, torch.Tensor))
        key = torch._C.DispatchKey.CUDA if device.type == "cuda" else torch._C.DispatchKey.CPU
        self.inside_ours = func.overloadpacket.__name__
        try:
            with self:
                return func._op_dk(key, *args, **(kwargs or {}))
        finally:
            self.inside_ours = None


@contextlib.contextmanager
def cuda_syncs_by_owner(counts):
    """On a GPU: every sync torch reports (set_sync_debug_mode), counted as counts["ours"] when our ops'
    Python wrappers are on the stack, else counts["others"]."""
    if not torch.cuda.is_available():
        yield
        return
    ops_file = os.path.abspath(ops.__file__)
    show = warnings.showwarning

    def record(message, category, *rest, **kw):
        if "synchroniz" not in str(message).lower():
            return show(message, category, *rest, **kw)
        frames = [os.path.abspath(f.filename) for f in traceback.extract_stack()]
        counts["ours" if ops_file in frames else "others"] += 1

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            yield
    finally:
        torch.cuda.set_sync_debug_mode("default")
        warnings.showwarning = show


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="time the ops with torch.profiler instead")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU")
    parser.add_argument("--emulated-cuda", action="store_true",
                        help="run our ops' CUDA code path under the CUDA emulator (CPU tensors)")
    args = parser.parse_args()
    with ops.emulated_cuda() if args.emulated_cuda else contextlib.nullcontext():
        run(args)


def run(args):
    n, device = args.side, torch.device(args.device)
    rgb = torch.from_numpy(np.asarray(Image.open(DEMO_IMAGE).convert("RGB").resize((n, n))).copy())
    rgb = (rgb.permute(2, 0, 1).float() / 255).to(device)
    hole = torch.zeros(n, n, dtype=torch.bool, device=device)
    hole[n // 4:3 * n // 4, n // 4:3 * n // 4] = True
    inside = torch.ones(n, n, dtype=torch.bool, device=device)
    opts = FillOptions(progress=False, metric="l2")
    optimise_mod.REMATCH_EVERY = args.iters  # one match for the counted iterations: their cost per iteration
    net = load_texture_net().to(device)
    # The previous scale (one iteration is enough): its result, which the finest scale's content term reads.
    coarse_rgb = torch.nn.functional.avg_pool2d(rgb[None], 2)[0]
    coarse, _ = optimise(net, coarse_rgb, masks_mod.downscale_mask(hole, n // 2),
                         torch.ones(n // 2, n // 2, dtype=torch.bool, device=device), 1, opts, "")
    if args.profile:
        profile(lambda: optimise(net, rgb, hole, inside, args.iters, opts, "", coarse=coarse))
        return
    counter, flop_counter, cuda_syncs = OpCounter(), FlopCounterMode(display=False), collections.Counter()
    with cuda_syncs_by_owner(cuda_syncs), flop_counter, counter:
        optimise(net, rgb, hole, inside, args.iters, opts, "", coarse=coarse)
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
    path = "the CUDA path (emulated)" if args.emulated_cuda else f"the {device.type.upper()} path"
    print(f"\nhost reads of device values (each a GPU sync) per iteration, our ops on {path}:")
    ours = ", ".join(f"{op} {n / steps:.1f}" for op, n in counter.our_syncs.items() if n) or "none"
    print(f"  inside our ops: {sum(counter.our_syncs.values()) / steps:.1f} ({ours}; patch_nn runs once per level "
          f"and layer: its first match, up to optimise.EXACT_START_SIDE)")
    print(f"  elsewhere (L-BFGS's line search, the pipeline's once-per-scale reads): {counter.syncs / steps:.1f}")
    if cuda_syncs:
        print(f"  syncs torch reported on the GPU: ours {cuda_syncs['ours'] / steps:.1f}, "
              f"others {cuda_syncs['others'] / steps:.1f}")


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
