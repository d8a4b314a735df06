//! An allocator that asks Linux for 2 MB pages under large buffers: the weights, Adam's moments, the activations
//! and the data a training step streams through.
//!
//! With the kernel's usual setting (`transparent_hugepage=madvise`) memory comes in 4 KB pages unless a program
//! asks for more, and a step sweeps megabytes of weights, moments and activations, and gathers a batch from rows
//! scattered over the whole data: one TLB entry per 4 KB, and on a virtual machine every miss walks two page tables.
//! With the advice, epochs on a 2-core AVX-512 Xeon took 2.5 % (the default MLP) to 5 % (the conv VAEs) less time
//! (BENCHMARKS.md); that machine has no counters to show the TLB misses themselves. The `elbo` binary and the
//! Python module install [`HugePages`]; it only advises the kernel and never changes where or how memory is
//! allocated, so results cannot change, and a kernel without transparent huge pages ignores the advice.

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, with `madvise(MADV_HUGEPAGE)` over the whole 2 MB pages inside every allocation of at
/// least [`MIN_BYTES`]. Install it with `#[global_allocator] static A: elbo::core::alloc::HugePages = HugePages;`.
///
/// Blocks are not moved to 2 MB boundaries to hold more such pages: tried, that raised the conv VAE's peak memory
/// from 230 to 378 MB, for at most 4 % on any workload's epoch.
pub struct HugePages;

/// Allocations below this size are left alone: they hold no whole 2 MB page.
pub const MIN_BYTES: usize = HUGE;

const HUGE: usize = 2 << 20;

/// Advises huge pages for the 2 MB-aligned pages lying wholly inside `len` bytes at `p`; the bytes around them
/// stay in small pages, so the advice never reaches memory another allocation owns.
fn advise(p: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    if !p.is_null() && len >= MIN_BYTES {
        let start = (p as usize).next_multiple_of(HUGE);
        let end = (p as usize + len) / HUGE * HUGE;
        if end > start {
            // SAFETY: the range lies inside an allocation we just received; MADV_HUGEPAGE changes no contents
            // and only fails on kernels without the feature, which is then simply not used.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, len);
}

// SAFETY: every call goes to `System` unchanged; `advise` only gives the kernel a hint about pages we own.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let q = unsafe { System.realloc(p, layout, new_size) };
        advise(q, new_size);
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_from_it_holds_what_is_written_and_grows_and_shrinks() {
        let a = HugePages;
        for size in [16, MIN_BYTES / 2 + 1, MIN_BYTES - 1, MIN_BYTES, 9 << 20] {
            let layout = Layout::from_size_align(size, 64).unwrap();
            // SAFETY: a non-zero size; the memory is written, read and freed with the layout it was made with.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert!((0..size).step_by(4099).all(|i| *p.add(i) == 0));
                for i in (0..size).step_by(4099) {
                    *p.add(i) = (i % 251) as u8;
                }
                let q = a.realloc(p, layout, 2 * size);
                assert!(
                    (0..size)
                        .step_by(4099)
                        .all(|i| *q.add(i) == (i % 251) as u8)
                );
                a.dealloc(q, Layout::from_size_align(2 * size, 64).unwrap());
            }
        }
    }

    /// The kernel's flags for the mapping holding `addr`, from `/proc/self/smaps` (`hg`: advised huge pages).
    #[cfg(target_os = "linux")]
    fn vm_flags(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((a, b)) = range.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                inside = (a..b).contains(&addr);
            } else if inside && let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.to_string();
            }
        }
        panic!("no mapping holds {addr:#x}")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn large_blocks_are_advised() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            eprintln!("this kernel has no transparent huge pages: nothing to advise");
            return;
        }
        let a = HugePages;
        let layout = Layout::from_size_align(9 << 20, 64).unwrap();
        // SAFETY: a non-zero size, freed with the layout it was made with.
        unsafe {
            let p = a.alloc(layout);
            let page = (p as usize).next_multiple_of(HUGE);
            assert!(
                vm_flags(page).split_whitespace().any(|f| f == "hg"),
                "{}",
                vm_flags(page)
            );
            a.dealloc(p, layout);
        }
    }
}
