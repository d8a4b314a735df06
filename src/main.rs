//! The `elbo` binary: everything lives in the library; this only sets how signals end it and hands over the
//! exit code.

/// 2 MB pages under the large buffers (see [`elbo::core::alloc`]).
#[global_allocator]
static ALLOCATOR: elbo::core::alloc::HugePages = elbo::core::alloc::HugePages;

fn main() {
    // SAFETY: setting dispositions before any thread starts, with the C library's own constants.
    unsafe {
        // A closed pipe (`elbo train | head -1`) ends the process quietly, as for other command-line tools,
        // instead of a panic on the next print. Every file elbo writes is written atomically, so nothing is lost.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        // A write beyond `ulimit -f` becomes an error elbo reports, instead of a silent kill mid-write.
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    std::process::exit(elbo::cli::main());
}
