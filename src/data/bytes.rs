//! Item bytes held on the heap or memory-mapped from a cache file, so a dataset larger than the memory a run
//! should use (CelebA: 2.5 GB at 64×64×3) is paged in by batch instead of read whole.

use memmap2::{Mmap, UncheckedAdvice};
use std::ops::Range;
use std::sync::Arc;

/// Bytes another owner keeps (a Python array's buffer, say): read in place, never written.
pub type Owner = Arc<dyn AsRef<[u8]> + Send + Sync>;

#[derive(Clone)]
enum Store {
    Heap(Arc<Vec<u8>>),
    Mapped(Arc<Mmap>),
    Shared(Owner),
}

/// A read-only view of bytes; cutting it (`truncate`, `split_off`) shares the storage instead of copying.
#[derive(Clone)]
pub struct Bytes {
    store: Store,
    range: Range<usize>,
}

impl Bytes {
    /// Bytes `range` of a mapped file.
    pub fn mapped(map: Arc<Mmap>, range: Range<usize>) -> Self {
        assert!(range.start <= range.end && range.end <= map.len());
        Bytes {
            store: Store::Mapped(map),
            range,
        }
    }

    /// All the bytes of `owner`, read where they are: a caller's buffer (NumPy's, from Python) is used without a
    /// copy for as long as a view of it lives. Writing through [`to_mut`](Self::to_mut) copies first.
    pub fn shared(owner: Owner) -> Self {
        let range = 0..(*owner).as_ref().len();
        Bytes {
            store: Store::Shared(owner),
            range,
        }
    }

    /// Whether the bytes are another owner's, read in place (see [`shared`](Self::shared)).
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Shared(_))
    }

    /// Whether the bytes live in a mapped file rather than on the heap.
    pub fn is_mapped(&self) -> bool {
        matches!(self.store, Store::Mapped(_))
    }

    /// Keeps the first `n` bytes.
    pub fn truncate(&mut self, n: usize) {
        self.range.end = self.range.end.min(self.range.start + n);
    }

    /// Keeps the first `at` bytes and returns the rest, sharing the storage.
    pub fn split_off(&mut self, at: usize) -> Bytes {
        assert!(at <= self.len(), "split at {at} of {}", self.len());
        let mid = self.range.start + at;
        let tail = Bytes {
            store: self.store.clone(),
            range: mid..self.range.end,
        };
        self.range.end = mid;
        tail
    }

    /// The bytes as an owned vector (copied unless this view alone owns them).
    pub fn into_vec(self) -> Vec<u8> {
        match self.store {
            Store::Heap(v) if self.range == (0..v.len()) => {
                Arc::try_unwrap(v).unwrap_or_else(|v| v.to_vec())
            }
            Store::Heap(v) => v[self.range].to_vec(),
            Store::Mapped(m) => m[self.range].to_vec(),
            Store::Shared(o) => (*o).as_ref()[self.range].to_vec(),
        }
    }

    /// The bytes to modify in place, copied onto the heap first unless this view alone owns them.
    pub fn to_mut(&mut self) -> &mut [u8] {
        let owned = matches!(&self.store, Store::Heap(v) if self.range == (0..v.len()));
        if !owned {
            let copy = self.to_vec();
            self.range = 0..copy.len();
            self.store = Store::Heap(Arc::new(copy));
        }
        let Store::Heap(v) = &mut self.store else {
            unreachable!("copied onto the heap above")
        };
        Arc::make_mut(v).as_mut_slice()
    }

    /// Calls `f` on consecutive pieces of at most `size` bytes, giving a mapped view's pages back after each
    /// piece, so a pass over a large file does not make it resident.
    pub fn scan(&self, size: usize, mut f: impl FnMut(&[u8])) {
        let mut at = 0;
        while at < self.len() {
            let end = (at + size.max(1)).min(self.len());
            f(&self[at..end]);
            let mut piece = self.clone();
            piece.truncate(end);
            piece.range.start += at;
            piece.release();
            at = end;
        }
    }

    /// Lets the kernel drop the pages of a mapped view from this process's memory; they stay in the page cache,
    /// so reading them again is cheap. Mapped data is read, so nothing is lost. Does nothing on the heap.
    pub fn release(&self) {
        if let Store::Mapped(m) = &self.store
            && !self.range.is_empty()
        {
            // madvise works on whole pages: widen the range to them, within the map.
            let page = 4096;
            let start = self.range.start / page * page;
            let end = self.range.end.div_ceil(page) * page;
            let end = end.min(m.len());
            // SAFETY: the map is private and read-only, so dropping its pages only makes the next read fetch
            // the file's bytes again; no reference sees different data.
            unsafe {
                let _ = m.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start);
            }
        }
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        let range = 0..v.len();
        Bytes {
            store: Store::Heap(Arc::new(v)),
            range,
        }
    }
}

impl FromIterator<u8> for Bytes {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Self {
        iter.into_iter().collect::<Vec<u8>>().into()
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.store {
            Store::Heap(v) => &v[self.range.clone()],
            Store::Mapped(m) => &m[self.range.clone()],
            Store::Shared(o) => &(**o).as_ref()[self.range.clone()],
        }
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let where_ = match self.store {
            Store::Heap(_) => "heap",
            Store::Mapped(_) => "mapped",
            Store::Shared(_) => "shared",
        };
        write!(f, "Bytes({} {where_})", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_share_and_copy_on_write() {
        let mut a = Bytes::from((0u8..10).collect::<Vec<u8>>());
        let b = a.split_off(6);
        assert_eq!(
            (&a[..], &b[..]),
            (&[0, 1, 2, 3, 4, 5][..], &[6, 7, 8, 9][..])
        );
        let mut c = a.clone();
        c.to_mut()[0] = 99;
        assert_eq!(
            (a[0], c[0]),
            (0, 99),
            "a shared view is copied before writing"
        );
        a.truncate(2);
        assert_eq!(a.into_vec(), vec![0, 1]);
    }

    #[test]
    fn a_shared_buffer_is_read_in_place_and_copied_before_writing() {
        let buffer: Arc<Vec<u8>> = Arc::new((0u8..8).collect());
        let owner: Owner = buffer.clone();
        let mut a = Bytes::shared(owner);
        let tail = a.split_off(5);
        assert!(a.is_shared() && tail.is_shared());
        assert_eq!(
            a.as_ptr(),
            buffer.as_ptr(),
            "no copy: the view reads the owner's bytes"
        );
        assert_eq!(&tail[..], &[5, 6, 7]);
        let mut w = a.clone();
        w.to_mut()[0] = 42;
        assert!(!w.is_shared());
        assert_eq!(
            (buffer[0], a[0], w[0]),
            (0, 0, 42),
            "the owner's bytes are never written"
        );
        assert_eq!(tail.into_vec(), vec![5, 6, 7]);
    }

    #[test]
    fn a_mapped_file_reads_like_the_heap_and_releases() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        // SAFETY: the test owns the file and does not change it while mapped.
        let map = Arc::new(unsafe { Mmap::map(&f) }.unwrap());
        let mut m = Bytes::mapped(map, 100..20_000);
        let tail = m.split_off(9_000);
        assert!(m.is_mapped() && tail.is_mapped());
        assert_eq!(&m[..], &data[100..9_100]);
        m.release();
        tail.release();
        assert_eq!(
            &tail[..],
            &data[9_100..],
            "released pages read back the same"
        );
        let mut w = m.clone();
        w.to_mut()[0] = 7;
        assert!(!w.is_mapped() && m.is_mapped());
        assert_eq!(m[0], data[100]);
    }
}
