"""python -m npsynth_ext.fill PHOTOS --mask-dir MASKS -o OUT --ray: the folder mode on a Ray cluster gives the
local folder mode's outputs, byte for byte, and its summary line and exit code; a worker killed in the
middle of a photo costs nothing but time; a rerun skips what exists; without Ray, --ray says how to
install it. The runs start a Ray cluster on this machine (2 workers of 1 thread each); one also runs on
the existing cluster NPSYNTH_RAY_CLUSTER names, where that is set (.ci/run starts one, `ray start --head`).

Tests that need Ray are skipped when it is not installed, unless NPSYNTH_EXPECT_RAY=1 (CI), where they
fail instead."""
import importlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
from PIL import Image

from npsynth_ext import fill_command as cli

FAST = ["--iters", "2", "0", "0", "--quiet"]
RAY = ["--ray-workers", "2", "--ray-threads", "1"]
# Every run in one thread, as each Ray worker (--ray-threads 1), so that their pixels can be compared; a
# cluster started for a run reports its usage to no one.
ENV = {"OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None and os.environ.get("NPSYNTH_EXPECT_RAY") != "1",
                               reason="Ray is not installed (pip install ray); NPSYNTH_EXPECT_RAY=1 fails instead")
RUN_TIMEOUT = 300


def make_batch(root):
    """photos/: a.png, b.jpg, f.png (64-96 px crops of the demo photo with masks), c.png (corrupt, with a
    mask), d.png (no mask); masks/."""
    photos, masks = root / "photos", root / "masks"
    photos.mkdir()
    masks.mkdir()
    demo = np.asarray(Image.open(cli.DEMO_IMAGE).convert("RGB"))
    for i, name in enumerate(["a.png", "b.jpg", "f.png"]):
        h, w = 64 + 16 * i, 96 - 16 * i
        Image.fromarray(demo[70 * i:70 * i + h, 120 + 50 * i:120 + 50 * i + w]).save(photos / name, quality=95)
        hole = np.zeros((h, w), np.uint8)
        hole[20:34, 24:40 + 4 * i] = 255
        Image.fromarray(hole).save(masks / f"{name[0]}.png")
    (photos / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG signature, then garbage
    Image.fromarray(hole).save(masks / "c.png")
    Image.fromarray(demo[:64, :64]).save(photos / "d.png")
    return photos, masks


def fill_folder(photos, masks, out, *extra, env=None, wait=True):
    """The CLI in its own process, as a user runs it: (exit code, stdout, stderr), or the Popen. It runs in
    the photos' parent folder, so that it imports the installed package, not a source checkout that is the
    current folder (as in CI)."""
    argv = [sys.executable, "-m", "npsynth_ext.fill", str(photos), "--mask-dir", str(masks), "-o", str(out),
            *FAST, *extra]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=photos.parent,
                            env={**os.environ, **ENV, **(env or {})})
    if not wait:
        return proc
    stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    return proc.returncode, stdout, stderr


def failures(err):
    """{photo name: reason} from the run's lines about photos."""
    lines = [line.split(": ", 2)[1:] for line in err.splitlines() if line.startswith("npsynth_ext.fill: ")]
    return {name: reason for name, reason in lines}


def contents(folder):
    """{file name: bytes} of every file in `folder`, hidden ones included."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The batch filled by the local folder mode: (photos, masks, out, exit code, stdout, stderr)."""
    root = tmp_path_factory.mktemp("local")
    photos, masks = make_batch(root)
    code, stdout, stderr = fill_folder(photos, masks, root / "out")
    return photos, masks, root / "out", code, stdout, stderr


@pytest.fixture(scope="module")
def ray_run(local_run, tmp_path_factory):
    """The same batch filled with --ray into a folder of its own: (out, exit code, stdout, stderr)."""
    photos, masks = local_run[:2]
    out = tmp_path_factory.mktemp("ray") / "out"
    return (out, *fill_folder(photos, masks, out, "--ray", *RAY))


def test_local_run_fills_the_good_photos_and_names_the_bad(local_run):
    *_, out, code, stdout, stderr = local_run
    assert code == 1 and stdout.splitlines()[-1] == "3 filled, 0 skipped (exists), 2 failed", stderr
    assert sorted(failures(stderr)) == ["c.png", "d.png"]
    assert sorted(os.listdir(out)) == ["a.png", "b.jpg", "f.png"]


@needs_ray
@pytest.mark.skipif(not os.environ.get("NPSYNTH_RAY_CLUSTER"), reason="NPSYNTH_RAY_CLUSTER names no Ray cluster")
def test_an_existing_cluster_gives_the_same_outputs(local_run, tmp_path):
    """Placed before every test that starts a cluster of its own (ray_run's and later ones): the
    existing cluster has dropped this test's driver when such tests had just stopped their clusters,
    whose drivers carry the same id, which may be the cause (docs/cluster.md)."""
    photos, masks, local_out, local_code, local_stdout, _ = local_run
    code, stdout, stderr = fill_folder(photos, masks, tmp_path / "out", "--ray", os.environ["NPSYNTH_RAY_CLUSTER"],
                                       *RAY)
    assert code == local_code and stdout.splitlines()[-1] == local_stdout.splitlines()[-1], stderr
    assert contents(tmp_path / "out") == contents(local_out)


@needs_ray
def test_ray_gives_the_local_folder_modes_outputs_and_exit_code(local_run, ray_run):
    *_, local_out, local_code, local_stdout, local_stderr = local_run
    out, code, stdout, stderr = ray_run
    assert code == local_code == 1, stderr
    assert stdout.splitlines()[-1] == local_stdout.splitlines()[-1]
    assert failures(stderr) == failures(local_stderr)
    assert contents(out) == contents(local_out)  # the same files, the same bytes, nothing else


@needs_ray
def test_a_rerun_skips_what_exists(local_run, ray_run):
    photos, masks = local_run[:2]
    out = ray_run[0]
    before = {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)}
    code, stdout, stderr = fill_folder(photos, masks, out, "--ray", *RAY)
    assert code == 1 and stdout.splitlines()[-1] == "0 filled, 3 skipped (exists), 2 failed", stderr
    assert {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)} == before


@needs_ray
def test_a_worker_killed_mid_photo_costs_only_time(local_run, tmp_path):
    """The worker that starts b.jpg is killed there (cluster.stall_for_test holds it until then) after a
    temporary file like the one a write cut short leaves is put beside the output: the photo is filled by
    another worker, the temporary file removed, and the run ends as the local one did."""
    photos, masks, local_out, local_code, local_stdout, _ = local_run
    out, stalled = tmp_path / "out", tmp_path / "stalled"
    run = fill_folder(photos, masks, out, "--ray", *RAY, env={"NPSYNTH_RAY_TEST_STALL": f"b.jpg:{stalled}"},
                      wait=False)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (stalled.exists() and stalled.read_text()):
            assert run.poll() is None and time.monotonic() < deadline, "no worker started b.jpg"
            time.sleep(0.05)
        pid = int(stalled.read_text())
        (out / f".b.jpg.tmp{pid}").write_bytes(b"half a JPEG")
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=RUN_TIMEOUT)
    finally:
        run.kill()
    assert run.returncode == local_code and stdout.splitlines()[-1] == local_stdout.splitlines()[-1], stderr
    assert "npsynth_ext.fill: b.jpg: its worker died; trying the photo again on another worker" in stderr
    assert contents(out) == contents(local_out)


def test_without_ray_it_says_how_to_install_it_before_any_work(tmp_path, capsys, monkeypatch):
    photos, masks = make_batch(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = cli.main([str(photos), "--mask-dir", str(masks), "-o", str(tmp_path / "out"), "--ray"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["npsynth_ext.fill: error: --ray needs Ray, which is not installed: "
                                 "pip install npsynth_ext[ray] (or pip install ray)"]
    assert not (tmp_path / "out").exists()


def test_the_package_and_a_local_folder_fill_do_not_import_ray(local_run, tmp_path):
    photos, masks = local_run[:2]
    script = (f"import sys, npsynth_ext, npsynth_ext.fill_command as cli\n"
              f"cli.main([{str(photos)!r}, '--mask-dir', {str(masks)!r}, '-o', {str(tmp_path / 'out')!r}, "
              f"*{FAST!r}])\n"
              f"print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                            cwd=tmp_path)
    assert result.stdout.splitlines()[-2:] == ["3 filled, 0 skipped (exists), 2 failed", "[]"], result.stderr


@pytest.mark.parametrize("argv,message", [
    (["{d}/photos/a.png", "--mask", "{d}/masks/a.png", "-o", "{d}/x.png", "--ray"], "--ray fills folders"),
    (["{d}/photos", "--mask-dir", "{d}/masks", "-o", "{d}/out", "--ray-workers", "2"], "go with --ray"),
    (["{d}/photos", "--mask-dir", "{d}/masks", "-o", "{d}/out", "--ray", "--ray-threads", "0"],
     "argument --ray-threads: must be a whole number of at least 1, got '0'"),
])
def test_ray_argument_errors_are_one_line_exit_2(tmp_path, capsys, argv, message):
    make_batch(tmp_path)
    try:
        code = cli.main([a.format(d=tmp_path) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("cpus,gpus,device,workers,threads,expected", [
    (8, 0, "cpu", None, 1, 5),  # no more workers than photos
    (8, 0, "cpu", None, 3, 2),
    (8, 2, "cuda", None, 1, 2),
    (8, 0, "cpu", 9, 1, "room for 8 workers of 1 CPU each, not 9"),
    (8, 0, "cuda", None, 1, "the Ray cluster has 8 CPUs and 0 GPUs: no room for a worker of 1 CPU and 1 GPU"),
    (1, 0, "cpu", None, 2, "no room for a worker of 2 CPUs"),
])
def test_worker_count_fits_the_cluster(cpus, gpus, device, workers, threads, expected):
    cluster = importlib.import_module("npsynth_ext.cluster")
    ray = types.SimpleNamespace(cluster_resources=lambda: {"CPU": float(cpus), "GPU": float(gpus)})
    args = types.SimpleNamespace(device=device, ray_workers=workers, ray_threads=threads)
    photos = ["a.png", "b.png", "c.png", "d.png", "e.png"]
    if isinstance(expected, int):
        assert cluster.worker_count(ray, args, photos) == expected
    else:
        with pytest.raises(cluster.ClusterError, match=expected):
            cluster.worker_count(ray, args, photos)
