//! What this machine can give a run: memory, checked before large buffers are allocated.

use crate::error::{Error, Result};

/// Refuses buffers of `scalars` f32 values that would not fit in the memory this machine has available,
/// before allocating them; `what` names the settings to lower.
pub fn check_memory(scalars: u128, what: &str) -> Result<()> {
    let bytes = scalars.saturating_mul(4);
    let available = available_memory();
    if bytes > available as u128 {
        return Err(Error::Config(format!(
            "{what} need {:.1} GiB of buffers, more than the {:.1} GiB this machine has available: lower them",
            bytes as f64 / (1u64 << 30) as f64,
            available as f64 / (1u64 << 30) as f64
        )));
    }
    Ok(())
}

/// Bytes of memory available to new allocations (`MemAvailable` on Linux; 8 GiB assumed elsewhere).
/// `ELBO_MEMORY_LIMIT` (bytes) overrides it, so tests can check the refusal on any machine.
pub fn available_memory() -> u64 {
    if let Some(v) = std::env::var("ELBO_MEMORY_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return v;
    }
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(8 << 30, |kb| kb * 1024)
}
