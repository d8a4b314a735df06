//! Fault injection for the file-writing sequences, compiled only into unit-test builds.
//!
//! Each step of a save that touches the file system first calls [`point`]. A test arms a plan on its own thread
//! (fail the N-th point, or "kill" the process there) and then checks what a later process would find. A kill
//! is modelled by returning an error that skips every clean-up, which leaves the files exactly as a SIGKILL at
//! that moment would (power loss, which also drops unsynced data, is outside what this models). In normal
//! builds [`point`] is an empty inline function.

/// Marks a step of a save; in test builds, fails or "kills" it when a plan says so.
#[inline]
pub(crate) fn point(_name: &'static str) -> std::io::Result<()> {
    #[cfg(test)]
    return plan::hit(_name);
    #[cfg(not(test))]
    Ok(())
}

/// Whether a simulated kill has happened on this thread: clean-up code must then leave everything as it is.
#[inline]
pub(crate) fn killed() -> bool {
    #[cfg(test)]
    return plan::killed();
    #[cfg(not(test))]
    false
}

#[cfg(test)]
pub(crate) mod plan {
    use std::cell::RefCell;

    /// What happens at the chosen point.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub enum Fault {
        /// The step fails with an I/O error (a full disk); normal error handling runs.
        Fail,
        /// The process dies before the step; nothing after it runs.
        Kill,
    }

    #[derive(Default)]
    struct State {
        at: Option<(usize, Fault)>,
        seen: Vec<&'static str>,
        killed: bool,
    }

    thread_local! {
        static STATE: RefCell<State> = RefCell::default();
    }

    /// Arms a fault at the `n`-th point (0-based) from now on this thread, or none.
    pub fn arm(at: Option<(usize, Fault)>) {
        STATE.with(|s| {
            *s.borrow_mut() = State {
                at,
                ..State::default()
            }
        });
    }

    /// The names of the points passed since [`arm`].
    pub fn seen() -> Vec<&'static str> {
        STATE.with(|s| s.borrow().seen.clone())
    }

    pub(super) fn killed() -> bool {
        STATE.with(|s| s.borrow().killed)
    }

    pub(super) fn hit(name: &'static str) -> std::io::Result<()> {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            if s.killed {
                return Err(std::io::Error::other("killed"));
            }
            let n = s.seen.len();
            s.seen.push(name);
            match s.at {
                Some((at, Fault::Fail)) if at == n => {
                    Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
                }
                Some((at, Fault::Kill)) if at == n => {
                    s.killed = true;
                    Err(std::io::Error::other("killed"))
                }
                _ => Ok(()),
            }
        })
    }
}
