//! The pool the products and element-wise kernels of a step are split over: workers that spin between jobs.
//!
//! A training step hands out dozens of jobs of tens of microseconds, with short serial stretches between them.
//! rayon's workers go to sleep within microseconds of running dry, and waking one costs a system call on the
//! caller and tens of microseconds before the worker runs, which kept the second core idle for 15–20 % of a
//! step. These workers spin for [`SPIN`] before they sleep, as OpenMP's do (`GOMP_SPINCOUNT`, `KMP_BLOCKTIME`).
//!
//! Which thread runs a part never changes what it computes, so results stay independent of the thread count.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker keeps looking for work before it sleeps, when there is a core for every thread.
const SPIN: Duration = Duration::from_millis(1);

/// One job at a time. `ticket` holds the job's generation (bits 32–63), its number of parts (16–31) and the next
/// part to hand out (0–15), so that a part is claimed only by a compare-exchange on the very job it belongs to.
struct Shared {
    ticket: AtomicU64,
    /// The job's closure and the function that calls it, type-erased; valid while the job has parts undone.
    data: AtomicPtr<()>,
    call: AtomicUsize,
    /// Parts finished, of the current job.
    done: AtomicUsize,
    /// Set when a part panicked on a worker; the caller panics in its place.
    panicked: AtomicBool,
    /// Held by the thread whose job is in flight: a second caller runs its parts itself.
    busy: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    /// [`SPIN`], or nothing when the threads outnumber the cores: a spinning worker would then take a core from the
    /// thread with the work.
    spin: Duration,
}

static POOL: OnceLock<&'static Shared> = OnceLock::new();

thread_local! {
    /// Set on a thread while it runs a part, so that a job started from inside one runs there, in order.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Most parts a job may have (the ticket's 16 bits).
const MAX_PARTS: usize = u16::MAX as usize;

/// Starts `workers` spinning threads (once; later calls keep the first pool).
#[inline]
pub(crate) fn start(workers: usize) {
    if POOL.get().is_some() {
        return;
    }
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            ticket: AtomicU64::new(0),
            data: AtomicPtr::new(std::ptr::null_mut()),
            call: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            spin: if workers < cores {
                SPIN
            } else {
                Duration::ZERO
            },
        }));
        for i in 0..workers {
            // A pool without its workers still computes everything, on the caller.
            let _ = std::thread::Builder::new()
                .name(format!("elbo-worker-{i}"))
                .spawn(move || {
                    super::denormal::ensure_flushed();
                    work(shared)
                });
        }
        shared
    });
}

/// Runs `f(0)`, …, `f(parts − 1)`, spread over the pool with the caller taking parts too; returns when all are
/// done. Runs them in order on the caller when there is no pool, when another job is in flight, or from inside a part.
pub(crate) fn run_parts(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    // In order on this thread, every part run even after one panicked, as the pool runs them: a caller sees the
    // same parts done whichever way its job ran (another job in flight sends it here).
    let serial = || {
        let mut first = None;
        for i in 0..parts {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(i))) {
                first.get_or_insert(p);
            }
        }
        if let Some(p) = first {
            std::panic::resume_unwind(p);
        }
    };
    let Some(&pool) = POOL.get() else {
        return serial();
    };
    if parts <= 1 || parts > MAX_PARTS || INSIDE.with(Cell::get) || pool.busy.swap(true, Acquire) {
        return serial();
    }
    // The closure is passed as a thin pointer to the fat one, which lives on this frame until every part is done.
    let fat: &(dyn Fn(usize) + Sync) = f;
    let data = &fat as *const &(dyn Fn(usize) + Sync) as *mut ();
    unsafe fn call(data: *mut (), part: usize) {
        // SAFETY: `data` points at `fat` above, alive while parts of its job are undone.
        let f = unsafe { *(data as *const &(dyn Fn(usize) + Sync)) };
        f(part)
    }
    pool.data.store(data, Relaxed);
    pool.call
        .store(call as unsafe fn(*mut (), usize) as usize, Relaxed);
    pool.done.store(0, Relaxed);
    let generation = ((pool.ticket.load(Relaxed) >> 32) + 1) & u32::MAX as u64;
    // Publishing the new generation (SeqCst, against a worker about to sleep: see `park`) releases the fields above.
    pool.ticket
        .store(generation << 32 | (parts as u64) << 16, SeqCst);
    if pool.sleepers.load(SeqCst) > 0 {
        let _guard = pool.lock.lock().unwrap_or_else(|e| e.into_inner());
        pool.wake.notify_all();
    }
    // Parts panic into `panicked`, never out of here: workers may still be running parts that borrow `f`.
    take_parts(pool, generation);
    let mut spins = 0u32;
    while pool.done.load(Acquire) < parts {
        spins = spins.saturating_add(1);
        if spins < 1 << 16 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    let panicked = pool.panicked.swap(false, Relaxed);
    pool.busy.store(false, Release);
    assert!(!panicked, "a part of a parallel job panicked");
}

/// Takes and runs parts of job `generation` until none are left.
fn take_parts(pool: &Shared, generation: u64) {
    let mut ticket = pool.ticket.load(Acquire);
    loop {
        if ticket >> 32 != generation {
            return;
        }
        let (parts, part) = ((ticket >> 16 & 0xffff) as usize, (ticket & 0xffff) as usize);
        if part >= parts {
            return;
        }
        match pool
            .ticket
            .compare_exchange_weak(ticket, ticket + 1, Acquire, Acquire)
        {
            Ok(_) => {
                // Stored before this generation was published, and kept by the claimed part: the job cannot end,
                // nor the next one be written, before this part is done.
                let (data, call) = (pool.data.load(Relaxed), pool.call.load(Relaxed));
                // SAFETY: `call` and `data` were stored for this generation, and the claimed part keeps them alive.
                let call: unsafe fn(*mut (), usize) = unsafe { std::mem::transmute(call) };
                INSIDE.with(|c| c.set(true));
                let r = catch_unwind(AssertUnwindSafe(|| unsafe { call(data, part) }));
                INSIDE.with(|c| c.set(false));
                if r.is_err() {
                    pool.panicked.store(true, Relaxed);
                }
                pool.done.fetch_add(1, Release);
                ticket = pool.ticket.load(Acquire);
            }
            Err(now) => ticket = now,
        }
    }
}

/// A worker's life: take the parts of each new job, spin a while for the next, then sleep until one comes.
fn work(pool: &'static Shared) {
    let mut seen = pool.ticket.load(Acquire) >> 32;
    loop {
        let started = Instant::now();
        let mut spins = 0u32;
        loop {
            let generation = pool.ticket.load(Acquire) >> 32;
            if generation != seen {
                seen = generation;
                take_parts(pool, generation);
                break;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && started.elapsed() >= pool.spin {
                park(pool, seen);
                break;
            }
            std::hint::spin_loop();
        }
    }
}

/// Sleeps until a generation after `seen` is published.
fn park(pool: &Shared, seen: u64) {
    let mut guard = pool.lock.lock().unwrap_or_else(|e| e.into_inner());
    pool.sleepers.fetch_add(1, SeqCst);
    // Either the caller's SeqCst store of a new ticket is seen here, or the caller sees this sleeper and notifies
    // under the lock, which this thread holds until `wait` releases it.
    while pool.ticket.load(SeqCst) >> 32 == seen {
        guard = pool.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
    }
    pool.sleepers.fetch_sub(1, SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn counts(parts: usize) -> Vec<AtomicU32> {
        (0..parts).map(|_| AtomicU32::new(0)).collect()
    }

    #[test]
    fn every_part_runs_once_from_every_caller_and_nested() {
        start(1);
        // Thousands of jobs of uneven sizes back to back (workers mostly spinning), then after pauses (workers
        // asleep), from two threads at once (one of them runs its parts itself), and jobs started from inside a part.
        std::thread::scope(|s| {
            for caller in 0..2 {
                s.spawn(move || {
                    for job in 0..3000usize {
                        let parts = 1 + (job * 7 + caller) % 9;
                        let c = counts(parts);
                        run_parts(parts, &|i| {
                            c[i].fetch_add(1, Relaxed);
                            if job % 500 == 0 {
                                let inner = counts(3);
                                run_parts(3, &|j| {
                                    inner[j].fetch_add(1, Relaxed);
                                });
                                assert!(inner.iter().all(|v| v.load(Relaxed) == 1));
                            }
                        });
                        assert!(c.iter().all(|v| v.load(Relaxed) == 1), "job {job}");
                        if job % 1000 == 999 {
                            std::thread::sleep(SPIN * 3);
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn a_panicking_part_panics_the_caller_after_the_others_finish() {
        start(1);
        for bad in [0, 3] {
            let c = counts(4);
            let r = catch_unwind(AssertUnwindSafe(|| {
                run_parts(4, &|i| {
                    if i == bad {
                        panic!("part {i}");
                    }
                    std::thread::sleep(Duration::from_millis(2));
                    c[i].fetch_add(1, Relaxed);
                })
            }));
            assert!(r.is_err());
            let finished = c.iter().filter(|v| v.load(Relaxed) == 1).count();
            assert_eq!(
                finished, 3,
                "part {bad} panicked: the others must have finished before the caller went on"
            );
        }
        // The pool is usable afterwards.
        let c = counts(5);
        run_parts(5, &|i| {
            c[i].fetch_add(1, Relaxed);
        });
        assert!(c.iter().all(|v| v.load(Relaxed) == 1));
    }
}
