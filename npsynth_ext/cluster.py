"""Folder fills on a Ray cluster: `python -m npsynth_ext.fill PHOTOS --mask-dir MASKS -o OUT --ray [ADDRESS]`.

fill_command.run_folder checks the folders and the output folder, then hands the photos to fill_folder here. A
pool of Ray actors (PhotoWorker) each loads VGG once and fills one photo at a time with
fill_command.fill_in_folder, the folder mode's own code: the same file matching, skipping, atomic writes and
outcomes. The driver hands out the photos, counts them on one progress bar and prints the same summary
line as the local folder mode.

A worker that dies in the middle of a photo (killed, out of memory, its machine lost) leaves no output
under the photo's name, since the output is written to a temporary file and renamed into place; the
driver removes that worker's temporary file, if any, starts a new worker and gives the photo to the next
free worker. A photo whose workers died MAX_TRIES times is reported failed, so one photo that crashes
every process cannot stop the batch.

Every path is read and written by the workers: they must see PHOTOS, MASKS and OUT (and any weights
file) under the same names as the driver, on a shared file system. Docs: docs/cluster.md.

Only this module imports ray, and only fill_command.run_folder imports this module, when --ray is given.
"""
import os
import sys
import time

from .fill_command import fill_in_folder, fill_options
from .images import temporary_path

INSTALL = "--ray needs Ray, which is not installed: pip install npsynth_ext[ray] (or pip install ray)"
LOCAL = "local"  # --ray without ADDRESS (fill_command's const): Ray's address for a new cluster on this machine
MAX_TRIES = 3  # workers that may die on one photo before it is reported failed
OUTCOMES = ("filled", "skipped (exists)", "failed")  # fill_in_folder's, in the summary line's order
STALL = "NPSYNTH_RAY_TEST_STALL"  # tests only, see stall_for_test


class ClusterError(ValueError):
    """A problem with --ray, before any photo: one line and exit code 2, like the CLI's other bad input
    (fill_command.EXPECTED_ERRORS)."""


def import_ray():
    """The ray module, or the one-line ClusterError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError(INSTALL) from None
    return ray


class PhotoWorker:
    """A Ray actor: the fill's options and VGG network, made once, then one photo of the folder per call."""

    def __init__(self, args, masks, threads):
        import torch

        # Set, not inherited: the worker's thread count is the run's choice (--ray-threads), whatever the
        # node's defaults are.
        torch.set_num_threads(threads)
        self.args, self.masks = args, masks
        self.opts = fill_options(args)  # checked here too: the device and weights files are the worker's
        self.opts.progress = False  # the one bar is the driver's
        from . import vgg

        self.net = vgg.load_texture_net(self.opts.vgg_weights, self.opts.device)

    def pid(self):
        return os.getpid()

    def fill(self, name):
        """fill_in_folder's (outcome, problem) for photo `name`, and the lines it had to say."""
        stall_for_test(name)
        lines = []
        outcome, problem = fill_in_folder(name, self.args, self.opts, self.masks, lines.append, self.net)
        return outcome, problem, lines


def stall_for_test(name):
    """Tests only: with NPSYNTH_RAY_TEST_STALL=NAME:FILE in the workers' environment, the first worker to
    start photo NAME writes its process id into FILE, which it creates, and waits to be killed, so a test
    can kill a worker in the middle of a photo. A later try of NAME finds FILE there and goes on."""
    target, _, path = os.environ.get(STALL, "").partition(":")
    if target != name:
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    time.sleep(3600)


def connect(ray, address):
    """Join the cluster at `address`, or start one on this machine (LOCAL) bound to 127.0.0.1."""
    quiet = dict(log_to_driver=False, logging_level="error")  # the driver's stderr is the bar's
    try:
        if address == LOCAL:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a run's own cluster reports to no one
            # "local": a new cluster even where another runs on this machine (ray.init(None) would join it)
            ray.init(LOCAL, include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
        else:
            ray.init(address=address, **quiet)
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds here; each is one line for the user
        where = "start a local Ray cluster" if address == LOCAL else f"connect to the Ray cluster at {address}"
        raise ClusterError(f"cannot {where}: {first_line(exc)}") from None


def first_line(exc):
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def worker_count(ray, args, photos):
    """How many workers: --ray-workers, or as many as the cluster's CPUs (and GPUs with --device cuda)
    hold, never more than photos. Asking for more than the cluster holds is an error: the rest would
    wait for resources forever."""
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    room = cpus // args.ray_threads
    if args.device == "cuda":
        room = min(room, gpus)
    wanted = args.ray_workers or room
    need = f"{args.ray_threads} CPU{'s' * (args.ray_threads > 1)}{' and 1 GPU' * (args.device == 'cuda')}"
    has = f"the Ray cluster has {cpus} CPUs and {gpus} GPUs"
    if room < 1:
        raise ClusterError(f"{has}: no room for a worker of {need}")
    if wanted > room:
        raise ClusterError(f"{has}: room for {room} workers of {need} each, not {wanted}")
    return min(wanted, len(photos))


def fill_folder(args, photos, masks):
    """Fill `photos` (names in the folder args.image) on Ray; returns the exit code (1 if any failed)."""
    ray = import_ray()
    connect(ray, args.ray)
    try:
        return fill_on(ray, args, photos, masks)
    finally:
        ray.shutdown()  # stops the cluster if this run started it; otherwise only leaves it


def fill_on(ray, args, photos, masks):
    from tqdm.auto import tqdm

    args.ray_threads = args.ray_threads or 1
    pool = Pool(ray, args, masks, worker_count(ray, args, photos))
    outcomes = dict.fromkeys(OUTCOMES, 0)
    bar = tqdm(total=len(photos), desc="photos", unit="photo", disable=args.quiet)
    say = lambda name, line: bar.write(f"npsynth_ext.fill: {name}: {line}", file=sys.stderr)  # noqa: E731
    waiting, deaths, running, idle = list(reversed(photos)), {}, {}, list(pool.pids)
    while waiting or running:
        while idle and waiting:
            worker, name = idle.pop(), waiting.pop()
            running[worker.fill.remote(name)] = worker, name
        (done,), _ = ray.wait(list(running), num_returns=1)
        worker, name = running.pop(done)
        try:
            outcome, problem, lines = ray.get(done)
        except ray.exceptions.RayActorError:  # the worker process is gone, with the photo unfinished
            worker = pool.replace(worker, name)
            deaths[name] = deaths.get(name, 0) + 1
            outcome, problem, lines = "failed", f"its worker died {MAX_TRIES} times; not tried again", []
            if deaths[name] < MAX_TRIES:
                say(name, "its worker died; trying the photo again on another worker")
                waiting.append(name)
                outcome = None
        except ray.exceptions.RayTaskError as exc:  # a bug in the worker's code: this photo's failure
            outcome, problem, lines = "failed", first_line(exc), []
        idle.append(worker)
        if outcome:
            for line in lines + [problem] * bool(problem):
                say(name, line)
            outcomes[outcome] += 1
            bar.set_postfix_str(name)
            bar.update()
    bar.close()
    print(", ".join(f"{count} {outcome}" for outcome, count in outcomes.items()))
    return 1 if outcomes["failed"] else 0


class Pool:
    """The run's workers (PhotoWorker actors), each with the reference to its process id, which resolves
    once the worker has loaded VGG."""

    def __init__(self, ray, args, masks, count):
        self.ray, self.args, self.masks = ray, args, masks
        # OpenMP reads OMP_NUM_THREADS when a process starts it: the native kernels get torch's count.
        self.actor = ray.remote(PhotoWorker).options(
            num_cpus=args.ray_threads, num_gpus=1 if args.device == "cuda" else 0, max_restarts=0,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(args.ray_threads)}})
        self.pids = dict(self.start() for _ in range(count))
        try:
            ray.get(list(self.pids.values()))
        except ray.exceptions.RayError as exc:  # the package, a weights file or the device missing on a node
            raise ClusterError(f"the Ray workers could not start: {first_line(exc)}") from None

    def start(self):
        worker = self.actor.remote(self.args, self.masks, self.args.ray_threads)
        return worker, worker.pid.remote()

    def replace(self, worker, name):
        """A new worker in place of `worker`, which died while it held photo `name`; the temporary file it
        may have left is removed."""
        ray = self.ray
        ray.kill(worker)  # if it is only unreachable, it must not write the photo beside its next try
        try:
            remove_temporary(self.args.output, name, ray.get(self.pids.pop(worker)))
        except ray.exceptions.RayActorError:
            pass  # it died before its VGG was loaded, so before any write
        new, pid = self.start()
        self.pids[new] = pid
        return new


def remove_temporary(out_dir, name, pid):
    """Remove the temporary file that a worker with process id `pid`, killed while writing photo `name`,
    left in `out_dir` (images.temporary_path, where images.write_atomically writes)."""
    tmp = temporary_path(os.path.join(out_dir, name), pid)
    if os.path.exists(tmp):
        os.remove(tmp)
