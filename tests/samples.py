"""One generator of op inputs, shared by the reference comparisons, gradient checks, opcheck and the
torch.compile tests: odd shapes, holes on every border, one-pixel holes, a single valid source, several
patch sizes, different source sizes and batches."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Case:
    name: str
    target: torch.Tensor
    source: torch.Tensor
    target_mask: torch.Tensor
    source_valid: torch.Tensor
    patch_size: int = 3

    def args(self):
        return self.target, self.source, self.target_mask, self.source_valid, self.patch_size

    def to(self, device=None, dtype=None):
        return Case(self.name, self.target.to(device, dtype), self.source.to(device, dtype),
                    self.target_mask.to(device), self.source_valid.to(device), self.patch_size)


def box_mask(H, W, y0, y1, x0, x1):
    m = torch.zeros(H, W, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def outside(hole, patch_size):
    """Centres whose whole patch lies outside the hole (the paper's source set)."""
    grown = F.max_pool2d(hole[None, None].double(), patch_size, stride=1, padding=patch_size // 2)[0, 0]
    return grown == 0


def hole_case(name, g, C, H, W, hole, patch_size=3):
    """Target and source are the same map, as in the pipeline: match the hole to the outside."""
    fmap = torch.randn(C, H, W, generator=g, dtype=torch.float64)
    return Case(name, fmap, fmap.clone(), hole, outside(hole, patch_size), patch_size)


def sample_cases(seed=0):
    """Yield float64 CPU cases; callers move them with Case.to()."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def rand_mask(H, W, p):
        return torch.rand(H, W, generator=g) < p

    yield Case("random_7x11_c3", randn(3, 7, 11), randn(3, 7, 11), rand_mask(7, 11, 0.3), rand_mask(7, 11, 0.6))
    yield hole_case("hole_33x29_c64", g, 64, 33, 29, box_mask(33, 29, 10, 21, 8, 19))
    yield hole_case("hole_top_border", g, 5, 13, 17, box_mask(13, 17, 0, 4, 5, 12))
    yield hole_case("hole_bottom_border", g, 5, 13, 17, box_mask(13, 17, 9, 13, 5, 12))
    yield hole_case("hole_left_border", g, 5, 15, 12, box_mask(15, 12, 4, 10, 0, 3))
    yield hole_case("hole_right_border", g, 5, 15, 12, box_mask(15, 12, 4, 10, 9, 12))
    yield hole_case("hole_corner", g, 4, 9, 10, box_mask(9, 10, 0, 3, 0, 4))
    yield hole_case("one_pixel_hole", g, 6, 11, 9, box_mask(11, 9, 5, 6, 4, 5))
    yield hole_case("patch5_hole", g, 3, 19, 21, box_mask(19, 21, 6, 12, 7, 15), patch_size=5)
    yield Case("patch1", randn(8, 9, 7), randn(8, 6, 5), rand_mask(9, 7, 0.5), rand_mask(6, 5, 0.5), patch_size=1)
    yield Case("single_source", randn(4, 8, 11), randn(4, 7, 6), rand_mask(8, 11, 0.4), box_mask(7, 6, 3, 4, 2, 3))
    yield Case("source_smaller", randn(3, 12, 15), randn(3, 5, 6), rand_mask(12, 15, 0.5), rand_mask(5, 6, 0.8))
    yield Case("empty_target_mask", randn(3, 6, 7), randn(3, 6, 7), torch.zeros(6, 7, dtype=torch.bool),
               rand_mask(6, 7, 0.5))
    yield Case("batched", randn(2, 7, 10, 13), randn(2, 7, 9, 8),
               torch.stack([rand_mask(10, 13, 0.3), box_mask(10, 13, 0, 10, 12, 13)]),
               torch.stack([rand_mask(9, 8, 0.5), box_mask(9, 8, 8, 9, 0, 1)]))
