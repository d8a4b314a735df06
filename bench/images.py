"""Image loading throughput: elbo's decode + resize of a folder of JPEGs against torchvision's ImageFolder
with a DataLoader (2 workers), on the same files, one after the other, in the same run.

    bench/run.sh --images [--n 20000] [--rounds 3]    (or: python bench/images.py with torchvision installed)

The folder (generated once, 20 000 JPEGs of about 180x220 in 10 class folders, like CelebA's 178x218 crops)
is bench/data/jpegs. Both sides produce 64x64 RGB images: torchvision with Resize(64) + CenterCrop(64) +
ToTensor (PIL bilinear with antialiasing), elbo with --image-size 64 (the same resize-then-crop). Each round
times torchvision, then elbo; the page cache is warmed by one untimed pass of each first.
"""
import argparse, json, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_folder(path, n):
    import numpy as np
    from PIL import Image
    done = os.path.join(path, ".complete")
    if os.path.exists(done) and open(done).read().strip() == str(n):
        return
    rng = np.random.default_rng(1)
    for c in range(10):
        os.makedirs(os.path.join(path, f"class{c}"), exist_ok=True)
    yy, xx = np.mgrid[0:240, 0:200]
    for i in range(n):
        h, w = 180 + int(rng.integers(-20, 40)), 180 + int(rng.integers(-20, 20))
        base = np.stack([
            (xx[:h, :w] * (1 + i % 7) + yy[:h, :w] * 2) % 256,
            (yy[:h, :w] * (1 + i % 5)) % 256,
            ((xx[:h, :w] + yy[:h, :w]) * 3 + i) % 256,
        ], axis=-1).astype(np.float32)
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(path, f"class{i % 10}", f"{i:06d}.jpg"), quality=90)
    open(done, "w").write(str(n))


def torchvision_pass(path):
    import torch
    from torchvision import datasets, transforms
    tf = transforms.Compose([transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor()])
    ds = datasets.ImageFolder(path, transform=tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=256, num_workers=2, shuffle=False)
    t = time.perf_counter()
    n = 0
    for x, _ in dl:
        n += x.shape[0]
    return n, time.perf_counter() - t


def elbo_pass(path, threads):
    exe = os.path.join(ROOT, "target", "release", "examples", "image_throughput")
    out = subprocess.run([exe, path, "64", str(threads)], check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return r["images"], r["seconds"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dir", default=os.path.join(ROOT, "bench", "data", "jpegs"))
    a = p.parse_args()
    import torch
    torch.set_num_threads(1)
    subprocess.run(["cargo", "build", "--release", "--example", "image_throughput"], cwd=ROOT, check=True)
    make_folder(a.dir, a.n)
    torchvision_pass(a.dir), elbo_pass(a.dir, a.threads)  # warm the page cache
    tv, el = [], []
    for r in range(a.rounds):
        n, s = torchvision_pass(a.dir)
        tv.append(n / s)
        m, s2 = elbo_pass(a.dir, a.threads)
        el.append(m / s2)
        print(f"round {r + 1}: torchvision {n / s:.0f} img/s ({s:.2f} s), elbo {m / s2:.0f} img/s ({s2:.2f} s)", flush=True)
    tvm, elm = statistics.median(tv), statistics.median(el)
    import torchvision, PIL
    print(json.dumps({
        "images": a.n, "rounds": a.rounds,
        "torchvision_img_per_s": round(tvm, 1), "elbo_img_per_s": round(elm, 1), "ratio": round(elm / tvm, 2),
        "torch": torch.__version__, "torchvision": torchvision.__version__, "pillow": PIL.__version__,
    }))


if __name__ == "__main__":
    main()
