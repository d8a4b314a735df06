//! Config parsers (the TOML file of `train --config` and the JSON saved in runs): any bytes give a config or an error.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    elbo::fuzzing::config(data);
});
