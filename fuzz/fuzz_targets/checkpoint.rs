//! Checkpoint loader: any bytes give a checkpoint or an error.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    elbo::fuzzing::checkpoint(data);
});
