//! The IDX format of MNIST-like datasets, raw or gzip-compressed, validated before allocating.

use crate::error::{Error, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// Largest number of items accepted: far above any MNIST-like set, far below what would exhaust memory.
const MAX_ITEMS: u64 = 10_000_000;
/// Largest accepted image side.
const MAX_SIDE: u64 = 4096;
/// Largest accepted payload in bytes (2 GiB).
const MAX_BYTES: u64 = 1 << 31;

/// An IDX array of unsigned bytes: `dims[0]` items of `dims[1..]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// The dimensions as stored in the header.
    pub dims: Vec<usize>,
    /// The items, row-major.
    pub data: Vec<u8>,
}

impl IdxArray {
    /// Number of items (the first dimension).
    pub fn len(&self) -> usize {
        self.dims[0]
    }

    /// Whether the array has no items.
    pub fn is_empty(&self) -> bool {
        self.dims[0] == 0
    }

    /// Bytes per item (the product of the remaining dimensions).
    pub fn item_size(&self) -> usize {
        self.dims[1..].iter().product()
    }
}

/// Reads an IDX file, decompressing it when it starts with the gzip magic bytes.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    parse_idx_any(std::io::BufReader::new(file), path)
}

/// Parses raw or gzip-compressed IDX bytes (told apart by the gzip magic); `path` only names the source in errors.
pub fn parse_idx_any(mut reader: impl Read, path: &Path) -> Result<IdxArray> {
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut reader, &mut magic).map_err(|e| Error::io(path, e))?;
    let chained = std::io::Cursor::new(magic[..n].to_vec()).chain(reader);
    if n == 2 && magic == [0x1f, 0x8b] {
        parse_idx(GzDecoder::new(chained), path)
    } else {
        parse_idx(chained, path)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            k => got += k,
        }
    }
    Ok(got)
}

/// Parses IDX bytes from any reader; `path` only names the source in errors.
pub fn parse_idx(mut r: impl Read, path: &Path) -> Result<IdxArray> {
    let bad = |reason: String| Error::Idx {
        path: path.to_path_buf(),
        reason,
    };
    let io_reason = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            format!("compressed data ends early ({e}): the file is truncated")
        }
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
            format!("corrupted compressed data ({e})")
        }
        _ => e.to_string(),
    };
    let mut header = [0u8; 4];
    let got = read_up_to(&mut r, &mut header).map_err(|e| bad(io_reason(e)))?;
    if got < 4 {
        return Err(bad(format!(
            "file is {got} bytes, shorter than the 4-byte magic number"
        )));
    }
    if header[0] != 0 || header[1] != 0 {
        return Err(bad(format!(
            "bad magic number {:02x}{:02x}{:02x}{:02x} (expected 0000 08 nn)",
            header[0], header[1], header[2], header[3]
        )));
    }
    if header[2] != 0x08 {
        return Err(bad(format!(
            "element type 0x{:02x} is not unsigned byte (0x08)",
            header[2]
        )));
    }
    let ndim = header[3] as usize;
    if ndim == 0 || ndim > 4 {
        return Err(bad(format!("{ndim} dimensions; expected 1 to 4")));
    }
    let mut dim_bytes = vec![0u8; 4 * ndim];
    let got = read_up_to(&mut r, &mut dim_bytes).map_err(|e| bad(io_reason(e)))?;
    if got < dim_bytes.len() {
        return Err(bad("truncated header: the dimensions are incomplete".into()));
    }
    let dims: Vec<u64> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64)
        .collect();
    if dims[0] > MAX_ITEMS {
        return Err(bad(format!(
            "header claims {} items, more than the {MAX_ITEMS} accepted",
            dims[0]
        )));
    }
    if let Some(&side) = dims[1..].iter().find(|&&d| d == 0 || d > MAX_SIDE) {
        return Err(bad(format!(
            "item dimension {side} is outside 1..={MAX_SIDE}"
        )));
    }
    let total = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    let total = match total {
        Some(t) if t <= MAX_BYTES => t as usize,
        _ => {
            let shape: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            return Err(bad(format!(
                "header claims {} bytes of data, more than the 2 GiB accepted",
                shape.join("x")
            )));
        }
    };
    // Grow with the bytes that actually arrive: a 20-byte file claiming 2 GiB must not reserve 2 GiB. Once the
    // first 16 MB have come, the rest is reserved in one piece: growing by doubling would leave the data in
    // memory moved page by page, which the allocator can no longer give 2 MB pages (see `core::alloc`).
    const FIRST: usize = 1 << 24;
    let mut data = Vec::with_capacity(total.min(FIRST));
    let mut got = (&mut r)
        .take(total.min(FIRST) as u64)
        .read_to_end(&mut data)
        .map_err(|e| bad(io_reason(e)))?;
    if got == FIRST && total > FIRST {
        data.reserve_exact(total - FIRST);
        got += (&mut r)
            .take((total - FIRST) as u64)
            .read_to_end(&mut data)
            .map_err(|e| bad(io_reason(e)))?;
    }
    if got < total {
        return Err(bad(format!(
            "truncated: header promises {total} data bytes, file has {got}"
        )));
    }
    let mut extra = [0u8; 1];
    if read_up_to(&mut r, &mut extra).map_err(|e| bad(io_reason(e)))? > 0 {
        return Err(bad(format!(
            "trailing bytes after the {total} data bytes the header promises"
        )));
    }
    Ok(IdxArray {
        dims: dims.iter().map(|&d| d as usize).collect(),
        data,
    })
}

/// Encodes bytes as an IDX array (used by tests and tools that write datasets).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<IdxArray> {
        parse_idx(bytes, Path::new("t.idx"))
    }

    #[test]
    fn round_trip() {
        let bytes = encode_idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let a = parse(&bytes).unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.len(), 2);
        assert_eq!(a.item_size(), 6);
        assert_eq!(a.data[11], 12);
    }

    fn reason(bytes: &[u8]) -> String {
        parse(bytes).unwrap_err().to_string()
    }

    #[test]
    fn rejects_malformed() {
        assert!(reason(&[0, 0]).contains("shorter than the 4-byte magic"));
        assert!(reason(&[1, 2, 8, 1, 0, 0, 0, 0]).contains("bad magic number"));
        assert!(reason(&[0, 0, 0x0d, 1, 0, 0, 0, 0]).contains("element type 0x0d"));
        assert!(reason(&[0, 0, 8, 9]).contains("9 dimensions"));
        assert!(reason(&[0, 0, 8, 2, 0, 0, 0, 1]).contains("truncated header"));
        let mut short = encode_idx(&[3, 2], &[1, 2, 3, 4, 5, 6]);
        short.truncate(short.len() - 1);
        assert!(reason(&short).contains("truncated: header promises 6 data bytes, file has 5"));
        let mut long = encode_idx(&[1, 2], &[1, 2]);
        long.push(0);
        assert!(reason(&long).contains("trailing bytes"));
        assert!(reason(&encode_idx(&[2, 0], &[])).contains("item dimension 0"));
    }

    #[test]
    fn refuses_absurd_header_before_allocating() {
        // 4e9 items of 4096x4096: allocating would abort the process, so the check must come first.
        let bytes = encode_idx(&[4_000_000_000, 4096, 4096], &[]);
        assert!(reason(&bytes).contains("more than the 10000000 accepted"));
        let bytes = encode_idx(&[9_000_000, 4096, 4096], &[]);
        assert!(reason(&bytes).contains("more than the 2 GiB accepted"));
    }
}
