"""A colour image folder from real photographs that scikit-image ships (skimage.data), for trying the colour
presets offline: N random square crops (side 64 to 160 pixels) of seven photos, resized to 64x64, one class
folder per photo. It is not CelebA: seven scenes, so crops of one photo share its colours and textures.

Usage: bench/.venv/bin/python bench/photos.py [--n 4000] [--out bench/data/photos64] [--seed 0]
"""
import argparse
import os

import numpy as np
import skimage.data
from PIL import Image

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "retina", "immunohistochemistry", "hubble_deep_field"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "photos64"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    photos = {name: getattr(skimage.data, name)() for name in PHOTOS}
    for name in PHOTOS:
        os.makedirs(os.path.join(args.out, name), exist_ok=True)
    for i in range(args.n):
        name = PHOTOS[rng.integers(len(PHOTOS))]
        img = photos[name]
        h, w = img.shape[:2]
        side = int(rng.integers(64, min(160, h, w) + 1))
        y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        crop = Image.fromarray(img[y:y + side, x:x + side]).resize((64, 64), Image.BICUBIC)
        crop.save(os.path.join(args.out, name, f"{i:05d}.png"))
    print(f"wrote {args.n} crops of {len(PHOTOS)} photos into {args.out}")


if __name__ == "__main__":
    main()
