//! Flushing denormal floats to zero: they make element-wise kernels up to 100x slower and carry no signal here.

/// Sets flush-to-zero and denormals-are-zero on the calling thread (a no-op off x86-64).
pub fn flush_to_zero() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reading and writing MXCSR only changes this thread's float rounding of tiny values.
    unsafe {
        let mut csr: u32 = 0;
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
        csr |= (1 << 15) | (1 << 6); // FTZ | DAZ
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly));
    }
}

thread_local! {
    static FLUSHED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// [`flush_to_zero`] once per thread: called where work is split, so that the parts the caller computes round tiny
/// values as the pool's workers do, whichever thread the caller is (a Python thread, a server's).
#[inline]
pub fn ensure_flushed() {
    if !FLUSHED.with(|f| f.replace(true)) {
        flush_to_zero();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn denormals_become_zero() {
        std::thread::spawn(|| {
            super::flush_to_zero();
            let tiny = std::hint::black_box(f32::MIN_POSITIVE);
            let r = std::hint::black_box(tiny) * std::hint::black_box(0.5f32);
            assert_eq!(r, 0.0);
        })
        .join()
        .unwrap();
    }
}
