//! Data-parallel work over MPI (the cargo feature `mpi`): which rank this process is among how many, and
//! the one collective training and evaluation need. Built without the feature, or started without an MPI launcher, a process
//! is rank 0 of 1 and every call here is local.

use std::sync::OnceLock;

/// (rank, ranks), set once MPI is up.
static GROUP: OnceLock<(usize, usize)> = OnceLock::new();

/// Keeps MPI initialised while alive and finalises it when dropped (an MPI process must, or its launcher
/// reports it as failed).
pub struct Guard {
    #[cfg(feature = "mpi")]
    _universe: Option<mpi::environment::Universe>,
}

/// Starts MPI when this binary has it and an MPI launcher (`mpirun`) started the process.
pub fn init() -> Guard {
    #[cfg(feature = "mpi")]
    {
        use mpi::traits::Communicator;
        let launched = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        if launched
            && let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Serialized)
        {
            let world = universe.world();
            let _ = GROUP.set((world.rank() as usize, world.size() as usize));
            return Guard {
                _universe: Some(universe),
            };
        }
        Guard { _universe: None }
    }
    #[cfg(not(feature = "mpi"))]
    Guard {}
}

/// The number of ranks an MPI launcher started, when this binary cannot join them (built without `mpi`).
pub fn launched_without_mpi() -> Option<usize> {
    if cfg!(feature = "mpi") {
        return None;
    }
    std::env::var("OMPI_COMM_WORLD_SIZE")
        .or_else(|_| std::env::var("PMI_SIZE"))
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 1)
}

/// This process's rank (0 alone).
pub fn rank() -> usize {
    GROUP.get().map_or(0, |g| g.0)
}

/// The number of ranks training together (1 alone).
pub fn size() -> usize {
    GROUP.get().map_or(1, |g| g.1)
}

/// Whether this process writes the run's files and prints its progress: rank 0 alone.
pub fn is_writer() -> bool {
    rank() == 0
}

/// Ranks sharing this machine, so each can take its share of the cores.
pub fn local_size() -> usize {
    std::env::var("OMPI_COMM_WORLD_LOCAL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n >= 1)
        .unwrap_or(1)
}

/// Stops every rank of the job with `code`: an error on one rank must not leave the others waiting for it.
pub fn abort(code: i32) -> ! {
    #[cfg(feature = "mpi")]
    {
        use mpi::traits::Communicator;
        mpi::topology::SimpleCommunicator::world().abort(code)
    }
    #[cfg(not(feature = "mpi"))]
    std::process::exit(code)
}

/// The default `--threads` of a rank: its share of this machine's cores when ranks share it, else all (0).
pub fn default_threads() -> usize {
    if size() == 1 {
        return 0;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / local_size()).max(1)
}

/// Every rank's `local` (the same length on all), in rank order, into `out` on every rank.
pub fn all_gather<T: Gatherable>(local: &[T], out: &mut [T]) {
    assert_eq!(out.len(), local.len() * size(), "gather sizes");
    if size() == 1 {
        out.copy_from_slice(local);
        return;
    }
    T::gather(local, out);
}

/// Values the gather moves.
pub trait Gatherable: Copy {
    /// Gathers over all ranks (more than one).
    fn gather(local: &[Self], out: &mut [Self]);
}

macro_rules! gatherable {
    ($t:ty) => {
        impl Gatherable for $t {
            fn gather(_local: &[Self], _out: &mut [Self]) {
                #[cfg(feature = "mpi")]
                {
                    use mpi::traits::CommunicatorCollectives;
                    mpi::topology::SimpleCommunicator::world().all_gather_into(_local, _out);
                }
                #[cfg(not(feature = "mpi"))]
                unreachable!("one rank without MPI")
            }
        }
    };
}
gatherable!(f32);
gatherable!(f64);
