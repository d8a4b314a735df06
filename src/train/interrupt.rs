//! Ctrl-C and SIGTERM during training: the loop stops between steps and says how to continue, instead of dying
//! with no word. A second signal ends the process at once, as usual.

use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // Only an atomic store: the one kind of work that is safe inside a signal handler.
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM while alive (see [`received`]); restores the previous handlers when dropped.
pub struct Catch {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl Catch {
    /// Starts catching. Signals the process was told to ignore (`nohup`, a background job) stay ignored.
    pub fn install() -> Catch {
        RECEIVED.store(0, Ordering::SeqCst);
        let mut previous = Vec::new();
        for signal in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: sigaction with zeroed, then filled, C structs; the handler only stores to an atomic.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction == libc::SIG_IGN
                {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                // Back to the default after one delivery, so a second Ctrl-C kills as users expect.
                new.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
                libc::sigemptyset(&mut new.sa_mask);
                if libc::sigaction(signal, &new, std::ptr::null_mut()) == 0 {
                    previous.push((signal, old));
                }
            }
        }
        Catch { previous }
    }
}

/// The signal received while a [`Catch`] was installed, if any (never set without one).
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

impl Drop for Catch {
    fn drop(&mut self) {
        for (signal, old) in &self.previous {
            // SAFETY: restoring exactly the action read before.
            unsafe {
                libc::sigaction(*signal, old, std::ptr::null_mut());
            }
        }
    }
}
