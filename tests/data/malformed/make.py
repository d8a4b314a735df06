"""Writes the malformed IDX files that tests/malformed.rs feeds to the parser (run from this folder)."""
import gzip
import struct


def idx(dims, data=b"", kind=0x08):
    return bytes([0, 0, kind, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


files = {
    "empty.idx": b"",
    "two-bytes.idx": b"\x00\x00",
    "bad-magic.idx": b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00",
    "float-elements.idx": idx([2], b"\x00" * 8, kind=0x0D),
    "nine-dims.idx": bytes([0, 0, 8, 9]),
    "zero-dims.idx": bytes([0, 0, 8, 0]),
    "truncated-header.idx": bytes([0, 0, 8, 3]) + struct.pack(">I", 5),
    "truncated-data.idx": idx([10, 28, 28], b"\x01" * 700),
    "trailing-bytes.idx": idx([1, 2, 2], b"\x01" * 5),
    "zero-side.idx": idx([3, 0, 28]),
    "huge-side.idx": idx([3, 5000, 28]),
    "absurd-count.idx": idx([4_000_000_000, 28, 28]),
    "huge-payload.idx": idx([9_000_000, 4096, 4096]),
    "not-gzip-after-magic.idx.gz": b"\x1f\x8b" + b"garbage that is not deflate data" * 4,
    "truncated.idx.gz": (lambda z: z[: len(z) // 2])(gzip.compress(idx([100, 28, 28], bytes(range(256)) * 306 + b"\x00" * 64), mtime=0)),
    "gzip-of-text.idx.gz": gzip.compress(b"hello, this is not an IDX file\n", mtime=0),
}
for name, data in files.items():
    with open(name, "wb") as f:
        f.write(data)
