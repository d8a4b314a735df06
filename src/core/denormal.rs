//! Flushing denormal floats to zero: they make element-wise kernels up to 100x slower and carry no signal here.

/// Sets flush-to-zero and denormals-are-zero on the calling thread (a no-op off x86-64).
pub fn flush_to_zero() {
    write_csr(read_csr() | (1 << 15) | (1 << 6)); // FTZ | DAZ
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

/// The calling thread's float mode (MXCSR) and whether elbo flushed it, as they were when made, put back when
/// dropped: a library called from another program (Python, a Rust application) flushes denormals while it works
/// and leaves the caller's own arithmetic as it found it.
pub struct Scope {
    csr: u32,
    flushed: bool,
}

impl Scope {
    /// Remembers the calling thread's float mode.
    pub fn new() -> Scope {
        Scope {
            csr: read_csr(),
            flushed: FLUSHED.with(|f| f.get()),
        }
    }

    /// The float mode this scope saved: the caller's, for running the caller's own code (a Python callback) in it.
    pub fn mode(&self) -> Mode {
        Mode(self.csr)
    }
}

/// A thread's float mode (MXCSR), saved by a [`Scope`].
#[derive(Debug, Clone, Copy)]
pub struct Mode(u32);

impl Mode {
    /// Runs `f` in this mode on the calling thread and puts the thread's own mode back after it (also when `f`
    /// unwinds): a user's callback, on whichever thread training calls it, computes as the user's code does.
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        struct Back(u32);
        impl Drop for Back {
            fn drop(&mut self) {
                write_csr(self.0);
            }
        }
        let _back = Back(read_csr());
        write_csr(self.0);
        f()
    }
}

impl Default for Scope {
    fn default() -> Self {
        Scope::new()
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        write_csr(self.csr);
        FLUSHED.with(|f| f.set(self.flushed));
    }
}

fn read_csr() -> u32 {
    #[allow(unused_mut)]
    let mut csr: u32 = 0;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: stmxcsr only stores this thread's float control word.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
    }
    csr
}

fn write_csr(csr: u32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: ldmxcsr loads a control word read earlier from this same thread.
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = csr;
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_mode_runs_the_callers_code_unflushed_inside_flushed_work() {
        let tiny = std::hint::black_box(1e-40f32);
        let caller = super::Scope::new();
        super::flush_to_zero();
        assert_eq!(std::hint::black_box(tiny) * 1.0, 0.0, "flushed");
        let inside = caller.mode().run(|| std::hint::black_box(tiny) * 1.0);
        assert_eq!(inside, tiny, "the caller's mode inside");
        assert_eq!(std::hint::black_box(tiny) * 1.0, 0.0, "flushed again after");
        drop(caller);
        assert_eq!(std::hint::black_box(tiny) * 1.0, tiny);
    }

    #[test]
    fn a_scope_puts_the_callers_mode_back() {
        std::thread::spawn(|| {
            let tiny = || std::hint::black_box(f32::MIN_POSITIVE) * std::hint::black_box(0.5f32);
            assert!(tiny() > 0.0);
            {
                let _scope = super::Scope::new();
                super::ensure_flushed();
                assert_eq!(tiny(), 0.0);
            }
            assert!(tiny() > 0.0, "the caller's denormals are back");
            // And elbo flushes again on its next use, inside a new scope.
            let _scope = super::Scope::new();
            super::ensure_flushed();
            assert_eq!(tiny(), 0.0);
        })
        .join()
        .unwrap();
    }

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
