//! A signal during an atomic write: held back until the file is in place, then handed to whoever handled it
//! before, or left recorded for an enclosing `Catch`. Its own test binary, as signal handlers are per process.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

static DELIVERED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count(_: libc::c_int) {
    DELIVERED.fetch_add(1, Ordering::SeqCst);
}

/// The program's own SIGINT handler, as Python's or an embedding program's would be.
fn install_counter() {
    // SAFETY: a zeroed, then filled, sigaction whose handler only adds to an atomic.
    unsafe {
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = count as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut new.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGINT, &new, std::ptr::null_mut()), 0);
    }
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_signal_during_a_write_acts_once_the_file_is_in_place() {
    install_counter();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("figure.png");
    let mut seen_inside = None;
    elbo::fsutil::write_atomic_with(&path, &mut |f| {
        f.write_all(b"first half, ")?;
        // Twice, as an impatient user presses Ctrl-C: the second must not end the write either.
        // SAFETY: raising a signal in this process.
        unsafe {
            libc::raise(libc::SIGINT);
            libc::raise(libc::SIGINT);
        }
        seen_inside = Some(DELIVERED.load(Ordering::SeqCst));
        f.write_all(b"second half")
    })
    .unwrap();
    assert_eq!(
        seen_inside,
        Some(0),
        "the signal reached the program mid-write"
    );
    assert_eq!(
        DELIVERED.load(Ordering::SeqCst),
        1,
        "the held signal was lost"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"first half, second half");
    assert_eq!(files_in(tmp.path()), ["figure.png"]);

    // Inside a Catch (training, eval) the signal stays recorded for the loop to stop on, and the program's own
    // handler is back once the Catch ends.
    {
        let _catch = elbo::signals::Catch::install();
        elbo::fsutil::write_atomic_with(&tmp.path().join("scores.csv"), &mut |f| {
            // SAFETY: as above.
            unsafe {
                libc::raise(libc::SIGINT);
                libc::raise(libc::SIGINT);
            }
            f.write_all(b"x")
        })
        .unwrap();
        assert_eq!(elbo::signals::received(), Some(libc::SIGINT));
        assert_eq!(DELIVERED.load(Ordering::SeqCst), 1);
    }
    assert_eq!(files_in(tmp.path()), ["figure.png", "scores.csv"]);
    // SAFETY: as above.
    unsafe { libc::raise(libc::SIGINT) };
    assert_eq!(
        DELIVERED.load(Ordering::SeqCst),
        2,
        "the program's handler was not restored"
    );
}
