//! Writes the fuzzers' starting corpus into `fuzz/seeds/`: tiny valid IDX files (raw and gzip), a tiny valid
//! checkpoint (before and after one Adam step) and valid configs, so the fuzzers start from real formats.
//!
//! `cargo run --release --example fuzz_seeds`

use elbo::data::idx::encode_idx;
use elbo::model::{ModelConfig, Vae};
use elbo::train::checkpoint::to_bytes;
use elbo::train::{RunConfig, TrainConfig, TrainState};
use rand::SeedableRng;
use std::io::Write;
use std::path::Path;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let root = Path::new("fuzz/seeds");
    let images = encode_idx(&[2, 3, 3], &(0..18).collect::<Vec<u8>>());
    let labels = encode_idx(&[2], &[7, 1]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&images).unwrap();
    let idx = root.join("idx");
    write(&idx, "images.idx", &images);
    write(&idx, "labels.idx", &labels);
    write(&idx, "images.idx.gz", &gz.finish().unwrap());

    let model = ModelConfig {
        rows: 2,
        cols: 2,
        hidden: vec![3],
        latent: 1,
        ..ModelConfig::pytorch_example()
    };
    let cfg = RunConfig {
        model: model.clone(),
        train: TrainConfig::default(),
        data: Default::default(),
    };
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
    let vae = Vae::<f32>::new(model, &mut rng);
    let mut adam = elbo::core::Adam::new(vae.params.len(), 1e-8);
    let mut state = TrainState {
        epoch: 0,
        adam_t: 0,
        data_rng: rand_pcg::Pcg64Mcg::seed_from_u64(2),
        noise_rng: rand_pcg::Pcg64Mcg::seed_from_u64(3),
        history: Vec::new(),
    };
    let ck = root.join("checkpoint");
    let conv = RunConfig {
        model: ModelConfig {
            rows: 4,
            cols: 4,
            conv: vec![elbo::model::ConvSpec::halving(2)],
            hidden: vec![],
            latent: 1,
            classes: 2,
            ..ModelConfig::pytorch_example()
        },
        train: TrainConfig::default(),
        data: Default::default(),
    };
    let cvae = Vae::<f32>::new(conv.model.clone(), &mut rng);
    let fresh = elbo::core::Adam::new(cvae.params.len(), 1e-8);
    write(
        &ck,
        "conv-cvae.safetensors",
        &to_bytes(&conv, &cvae.params, &fresh, &state).unwrap(),
    );
    write(
        &ck,
        "fresh.safetensors",
        &to_bytes(&cfg, &vae.params, &adam, &state).unwrap(),
    );
    adam.t = 1;
    state.adam_t = 1;
    state.epoch = 1;
    write(
        &ck,
        "stepped.safetensors",
        &to_bytes(&cfg, &vae.params, &adam, &state).unwrap(),
    );

    let config = root.join("config");
    write(
        &config,
        "run.json",
        serde_json::to_string_pretty(&cfg).unwrap().as_bytes(),
    );
    println!("wrote seeds into {}", root.display());
}
