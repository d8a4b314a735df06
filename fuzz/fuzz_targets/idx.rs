//! IDX parser, raw and gzip: any bytes give an array or an error, never a panic or an unbounded allocation.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    elbo::fuzzing::idx(data);
});
