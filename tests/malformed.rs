//! Every file in tests/data/malformed (made by its make.py) is refused by the IDX reader with the exact error
//! listed here, naming the file, and without a panic or a large allocation.

use std::path::Path;

const CASES: &[(&str, &str)] = &[
    (
        "empty.idx",
        "file is 0 bytes, shorter than the 4-byte magic number",
    ),
    (
        "two-bytes.idx",
        "file is 2 bytes, shorter than the 4-byte magic number",
    ),
    (
        "bad-magic.idx",
        "bad magic number 12340801 (expected 0000 08 nn)",
    ),
    (
        "float-elements.idx",
        "element type 0x0d is not unsigned byte (0x08)",
    ),
    ("nine-dims.idx", "9 dimensions; expected 1 to 4"),
    ("zero-dims.idx", "0 dimensions; expected 1 to 4"),
    (
        "truncated-header.idx",
        "truncated header: the dimensions are incomplete",
    ),
    (
        "truncated-data.idx",
        "truncated: header promises 7840 data bytes, file has 700",
    ),
    (
        "trailing-bytes.idx",
        "trailing bytes after the 4 data bytes the header promises",
    ),
    ("zero-side.idx", "item dimension 0 is outside 1..=4096"),
    ("huge-side.idx", "item dimension 5000 is outside 1..=4096"),
    (
        "absurd-count.idx",
        "header claims 4000000000 items, more than the 10000000 accepted",
    ),
    (
        "huge-payload.idx",
        "header claims 9000000x4096x4096 bytes of data, more than the 2 GiB accepted",
    ),
    (
        "not-gzip-after-magic.idx.gz",
        "corrupted compressed data (invalid gzip header)",
    ),
    (
        "truncated.idx.gz",
        "compressed data ends early (incomplete deflate stream): the file is truncated",
    ),
    (
        "gzip-of-text.idx.gz",
        "bad magic number 68656c6c (expected 0000 08 nn)",
    ),
];

#[test]
fn each_malformed_file_gets_its_exact_error() {
    let dir = Path::new("tests/data/malformed");
    let mut listed = 0;
    for (name, expected) in CASES {
        let path = dir.join(name);
        let err = elbo::data::idx::read_idx(&path)
            .expect_err(name)
            .to_string();
        assert_eq!(
            err,
            format!("{}: not a valid IDX file: {expected}", path.display())
        );
        listed += 1;
    }
    let on_disk = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".py")
        })
        .count();
    assert_eq!(
        listed, on_disk,
        "every malformed file has an expected error"
    );
}
