"""Write scikit-image's bundled photos that the quality harness does not score into a folder, as PNG: a
small training set for the content network that never sees the harness's photos.

    python benchmarks/content_photos.py photos/
    python -m npsynth_ext.train_content photos/ -o content.pt --time-budget 10
"""
import argparse
import os

import numpy as np
from PIL import Image

# Bundled with scikit-image (no download); the harness's astronaut, coffee, rocket, chelsea, brick and
# gravel are left out.
NAMES = ["camera", "coins", "grass", "horse", "hubble_deep_field", "immunohistochemistry", "moon", "page", "text",
         "retina", "clock", "colorwheel", "cell"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    args = parser.parse_args()
    from skimage import data

    os.makedirs(args.folder, exist_ok=True)
    for name in NAMES:
        img = getattr(data, name)()
        if img.dtype != np.uint8:  # a few are float or wider ints: scale them to 0..255
            img = (img.astype(np.float64) / max(img.max(), 1) * 255).round().astype(np.uint8)
        Image.fromarray(img).save(os.path.join(args.folder, f"{name}.png"))
    print(f"wrote {len(NAMES)} photos to {args.folder}")


if __name__ == "__main__":
    main()
