"""Every entry point rejects bad input with a message that names the problem, before doing any work."""
import pytest
import torch

import npsynth_ext as nx
from samples import box_mask


def good(C=3, H=9, W=10, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    target = torch.randn(C, H, W, generator=g, dtype=dtype)
    source = torch.randn(C, H, W, generator=g, dtype=dtype)
    mask = box_mask(H, W, 3, 6, 3, 7)
    valid = ~box_mask(H, W, 2, 7, 2, 8)
    index = torch.where(mask, torch.zeros(H, W, dtype=torch.int64), torch.full((H, W), -1))
    return dict(target=target, source=source, target_mask=mask, source_valid=valid, index=index)


def call_patch_nn(a, patch_size=3, metric="l2"):
    return nx.patch_nn(a["target"], a["source"], a["target_mask"], a["source_valid"], patch_size, metric)


def call_patchmatch(a, patch_size=3, metric="l2", **options):
    return nx.patchmatch(a["target"], a["source"], a["target_mask"], a["source_valid"], patch_size, metric, **options)


def call_texture_loss(a, patch_size=3):
    return nx.texture_loss(a["target"], a["source"], a["index"], a["target_mask"], patch_size)


def with_(**changes):
    a = good()
    a.update(changes)
    return a


ALL_OPS = [call_patch_nn, call_patchmatch, call_texture_loss]
ALL_IDS = ["patch_nn", "patchmatch", "texture_loss"]
SEARCH_OPS = [call_patch_nn, call_patchmatch]
SEARCH_IDS = ["patch_nn", "patchmatch"]

BAD_BOTH = [
    ("int target", with_(target=torch.ones(3, 9, 10, dtype=torch.int32)), TypeError, "target must be float32 or float64"),
    ("half source", with_(source=torch.ones(3, 9, 10, dtype=torch.float16)), TypeError, "source must be float32"),
    ("dtype mix", with_(source=torch.ones(3, 9, 10, dtype=torch.float64)), TypeError, "source is torch.float64"),
    ("2-D target", with_(target=torch.ones(9, 10)), ValueError, r"target must be \[C, H, W\]"),
    ("5-D target", with_(target=torch.ones(1, 1, 3, 9, 10)), ValueError, r"target must be \[C, H, W\]"),
    ("rank mismatch", with_(source=torch.ones(1, 3, 9, 10)), ValueError, r"source must be \[C, H, W\]"),
    ("channels", with_(source=torch.ones(4, 9, 10)), ValueError, "channel counts differ: target 3, source 4"),
    ("non-contiguous", with_(target=torch.ones(3, 10, 9).transpose(1, 2)), ValueError, "target must be contiguous"),
    ("mask shape", with_(target_mask=torch.ones(9, 9, dtype=torch.bool)), ValueError,
     r"target_mask must have shape \(9, 10\)"),
    ("mask dtype", with_(target_mask=torch.ones(9, 10, dtype=torch.uint8)), TypeError, "target_mask must be torch.bool"),
    ("not a tensor", with_(source=[[1.0]]), TypeError, "source must be a torch.Tensor"),
]


@pytest.mark.parametrize("what,args,exc,match", BAD_BOTH, ids=[b[0] for b in BAD_BOTH])
@pytest.mark.parametrize("call", ALL_OPS, ids=ALL_IDS)
def test_rejected_by_every_op(call, what, args, exc, match):
    with pytest.raises(exc, match=match):
        call(args)


@pytest.mark.parametrize("patch_size", [0, -3, 2, 4, 3.0, True])
@pytest.mark.parametrize("call", ALL_OPS, ids=ALL_IDS)
def test_patch_size_must_be_odd_positive_int(call, patch_size):
    with pytest.raises(ValueError, match="patch_size must be an odd positive int"):
        call(good(), patch_size=patch_size)


@pytest.mark.parametrize("call", SEARCH_OPS, ids=SEARCH_IDS)
def test_search_ops_rejects_unknown_metric(call):
    with pytest.raises(ValueError, match="metric must be one of"):
        call(good(), metric="L1")


@pytest.mark.parametrize("call", SEARCH_OPS, ids=SEARCH_IDS)
def test_search_ops_rejects_empty_source_set(call):
    with pytest.raises(RuntimeError, match="source_valid has no valid source patch"):
        call(with_(source_valid=torch.zeros(9, 10, dtype=torch.bool)))


@pytest.mark.parametrize("call", SEARCH_OPS, ids=SEARCH_IDS)
def test_search_ops_rejects_bad_source_valid_shape(call):
    with pytest.raises(ValueError, match=r"source_valid must have shape \(9, 10\)"):
        call(with_(source_valid=torch.ones(10, 9, dtype=torch.bool)))


def test_patchmatch_rejects_bad_settings():
    a = good()
    with pytest.raises(TypeError, match="init_index must be torch.int64"):
        call_patchmatch(a, init_index=a["index"].int())
    with pytest.raises(ValueError, match=r"init_index must have shape \(9, 10\)"):
        call_patchmatch(a, init_index=a["index"].t().contiguous())
    for name, value in (("iters", -1), ("radius", -2), ("iters", 1.5), ("radius", True)):
        with pytest.raises(ValueError, match=f"{name} must be a non-negative int"):
            call_patchmatch(a, **{name: value})
    with pytest.raises(TypeError, match="seed must be an int"):
        call_patchmatch(a, seed=0.5)


def test_batch_sizes_must_agree():
    a = good()
    with pytest.raises(ValueError, match="batch sizes differ: target 2, source 3"):
        nx.patch_nn(a["target"].expand(2, -1, -1, -1).contiguous(), a["source"].expand(3, -1, -1, -1).contiguous(),
                    a["target_mask"].expand(2, -1, -1).contiguous(), a["source_valid"].expand(3, -1, -1).contiguous())


@pytest.mark.parametrize("bad", [-1, 90])
def test_texture_loss_rejects_index_out_of_range(bad):
    a = good()
    a["index"][4, 4] = bad
    with pytest.raises(RuntimeError, match=r"index must lie in \[0, 90\) wherever target_mask is set"):
        call_texture_loss(a)


def test_texture_loss_rejects_bad_index_dtype_and_shape():
    with pytest.raises(TypeError, match="index must be torch.int64"):
        call_texture_loss(with_(index=torch.zeros(9, 10, dtype=torch.int32)))
    with pytest.raises(ValueError, match=r"index must have shape \(9, 10\)"):
        call_texture_loss(with_(index=torch.zeros(10, 9, dtype=torch.int64)))


def test_native_ops_check_too():
    """Callers of torch.ops.npsynth.* directly get the C++ checks."""
    a = good()
    t, s, m, v = (a[k].unsqueeze(0) for k in ("target", "source", "target_mask", "source_valid"))
    with pytest.raises(RuntimeError, match="patch_size must be odd and positive"):
        torch.ops.npsynth.patch_nn(t, s, m, v, 2, "l2")
    with pytest.raises(RuntimeError, match="metric must be 'l2' or 'cosine'"):
        torch.ops.npsynth.patch_nn(t, s, m, v, 3, "dot")
    with pytest.raises(RuntimeError, match="target must be contiguous"):
        torch.ops.npsynth.patch_nn(t.transpose(2, 3).contiguous().transpose(2, 3), s, m, v, 3, "l2")
    with pytest.raises(RuntimeError, match="target_mask must be bool"):
        torch.ops.npsynth.texture_loss(t, s, a["index"].unsqueeze(0), m.float(), 3)
    with pytest.raises(RuntimeError, match="init_index must have target_mask's shape"):
        torch.ops.npsynth.patchmatch(t, s, m, v, 3, "l2", a["index"], 1, 0, 0)
    with pytest.raises(RuntimeError, match="iters must be >= 0"):
        torch.ops.npsynth.patchmatch(t, s, m, v, 3, "l2", None, -1, 0, 0)
    with pytest.raises(RuntimeError, match="source_valid has no valid source patch"):
        torch.ops.npsynth.patchmatch(t, s, m, torch.zeros_like(v), 3, "l2", None, 1, 0, 0)


@pytest.mark.parametrize("call", ALL_OPS, ids=ALL_IDS)
def test_device_mismatch(call):
    """Checked on metadata alone, so a 'meta' tensor stands in for a second device on any machine."""
    with pytest.raises(ValueError, match="source is on meta but target is on cpu"):
        call(with_(source=torch.empty(3, 9, 10, device="meta")))
    with pytest.raises(ValueError, match="target_mask is on meta but its feature map is on cpu"):
        call(with_(target_mask=torch.empty(9, 10, dtype=torch.bool, device="meta")))


def test_native_messages_name_the_values():
    """The C++ checks join their messages without an ostream (NPS_CHECK, csrc/common/op_checks.h): the numbers,
    shapes and dtypes still read as torch prints them."""
    a = good()
    t, s, m, v = (a[k].unsqueeze(0) for k in ("target", "source", "target_mask", "source_valid"))
    with pytest.raises(RuntimeError, match=r"^npsynth: target_mask must be \[B, H, W\] = 1x9x10, got \[1, 10, 9\]$"):
        torch.ops.npsynth.patch_nn(t, s, m.transpose(1, 2).contiguous(), v, 3, "l2")
    with pytest.raises(RuntimeError, match=r"^npsynth: source is Double but target is Float$"):
        torch.ops.npsynth.patch_nn(t, s.double(), m, v, 3, "l2")
    with pytest.raises(RuntimeError, match=r"^npsynth: patch_size must be odd and positive, got -3$"):
        torch.ops.npsynth.patch_nn(t, s, m, v, -3, "l2")
    with pytest.raises(RuntimeError, match=r"^npsynth: metric must be 'l2' or 'cosine', got 'dot'$"):
        torch.ops.npsynth.patch_nn(t, s, m, v, 3, "dot")
    with pytest.raises(RuntimeError, match=r"^npsynth: index must lie in \[0, 90\) wherever target_mask is set$"):
        torch.ops.npsynth.texture_loss(t, s, torch.full((1, 9, 10), 90), m, 3)
    with pytest.raises(RuntimeError, match=r"^npsynth: texture_loss_backward expects a scalar grad, got \[2\]$"):
        torch.ops.npsynth.texture_loss_backward(torch.ones(2), t, s, torch.zeros(1, 9, 10, dtype=torch.int64), m, 3)
