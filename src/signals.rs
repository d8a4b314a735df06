//! Ctrl-C and SIGTERM: long work stops between steps and says how to continue, instead of dying with no word,
//! and a file being written is finished (or left unwritten) before a signal acts. A second signal ends the
//! process at once, as usual.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// How many [`Catch`]es are alive, and the actions the outermost replaced.
static INSTALLED: Mutex<(usize, Vec<(libc::c_int, libc::sigaction)>)> = Mutex::new((0, Vec::new()));

extern "C" fn on_signal(signal: libc::c_int) {
    // Only an atomic store: the one kind of work that is safe inside a signal handler.
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM while alive (see [`received`]); the outermost restores the previous handlers when
/// dropped. Catches nest (a file written while training is stopping, two Python threads scoring at once): only
/// the outermost installs and restores, and a signal is forgotten only when a new outermost one starts.
pub struct Catch {
    _private: (),
}

impl Catch {
    /// Starts catching. Signals the process was told to ignore (`nohup`, a background job) stay ignored.
    pub fn install() -> Catch {
        let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        if installed.0 == 0 {
            RECEIVED.store(0, Ordering::SeqCst);
            installed.1 = install_handlers();
        }
        installed.0 += 1;
        Catch { _private: () }
    }
}

/// How many [`held_during`]s run, and the actions the outermost replaced.
static HELD: Mutex<(usize, Vec<(libc::c_int, libc::sigaction)>)> = Mutex::new((0, Vec::new()));

fn install_handlers() -> Vec<(libc::c_int, libc::sigaction)> {
    // Back to the default after one delivery, so a second Ctrl-C kills as users expect.
    install_with(libc::SA_RESETHAND | libc::SA_RESTART)
}

fn install_with(flags: libc::c_int) -> Vec<(libc::c_int, libc::sigaction)> {
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
            new.sa_flags = flags;
            libc::sigemptyset(&mut new.sa_mask);
            if libc::sigaction(signal, &new, std::ptr::null_mut()) == 0 {
                previous.push((signal, old));
            }
        }
    }
    previous
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
        let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        installed.0 -= 1;
        if installed.0 > 0 {
            return;
        }
        restore(installed.1.drain(..));
    }
}

fn restore(actions: impl Iterator<Item = (libc::c_int, libc::sigaction)>) {
    for (signal, old) in actions {
        // SAFETY: restoring exactly the action read before.
        unsafe {
            libc::sigaction(signal, &old, std::ptr::null_mut());
        }
    }
}

/// Runs `work` (a file's write and rename) with SIGINT and SIGTERM held back, so that a signal never leaves a
/// half-written temporary file beside the output. Inside a [`Catch`] the signal stays recorded for the caller to
/// act on; otherwise it is delivered again once `work` is done, to whatever handled it before (the default ends
/// the process, as it would have a moment earlier; Python's raises KeyboardInterrupt).
pub fn held_during<T>(work: impl FnOnce() -> T) -> T {
    let nested = INSTALLED.lock().map(|i| i.0 > 0).unwrap_or(true);
    {
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        if held.0 == 0 {
            if !nested {
                RECEIVED.store(0, Ordering::SeqCst);
            }
            // Every signal is held, not only the first: a second Ctrl-C mid-write would leave the temporary file.
            held.1 = install_with(libc::SA_RESTART);
        }
        held.0 += 1;
    }
    let r = work();
    let last = {
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        held.0 -= 1;
        if held.0 == 0 {
            restore(held.1.drain(..));
        }
        held.0 == 0
    };
    if last
        && !nested
        && let Some(signal) = received()
    {
        // SAFETY: raising a signal in this process; its handler is the one the caller had.
        unsafe {
            libc::raise(signal);
        }
    }
    r
}
