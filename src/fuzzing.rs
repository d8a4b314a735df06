//! Entry points shared by the `cargo fuzz` targets in `fuzz/` and the corpus regression test, so both run the
//! same code.

use std::path::Path;

/// Parses bytes as a raw or gzip IDX file; when it parses, touches every byte it claims to hold.
pub fn idx(data: &[u8]) {
    if let Ok(a) = crate::data::idx::parse_idx_any(data, Path::new("fuzz.idx")) {
        assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
    }
}

/// Parses bytes as a checkpoint; when it loads, its weights must fit the config it carries.
pub fn checkpoint(data: &[u8]) {
    if let Ok(ck) = crate::train::checkpoint::from_bytes(data, Path::new("fuzz.safetensors")) {
        assert_eq!(ck.vae.params.len(), ck.adam.m.len());
        assert!(ck.vae.params.data.iter().all(|v| v.is_finite()));
    }
}

/// Parses bytes as a `train --config` TOML file (and resolves it into a run) and as a saved JSON run config;
/// whatever parses must also size its model and buffers without allocating them.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = crate::train::config::RunConfig::from_json(text) {
        let _ = cfg
            .model
            .workspace_len(cfg.train.batch_size, cfg.train.samples);
    }
    if let Ok(flags) = crate::train::Settings::from_toml(text, "fuzz.toml")
        && let Ok(cfg) = flags.resolve()
    {
        let _ = cfg
            .model
            .workspace_len(cfg.train.batch_size, cfg.train.samples);
    }
}
