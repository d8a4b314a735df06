//! The loss of one fixed batch with fixed weights against PyTorch's value, computed independently by
//! `bench/reference.py` (float64 autograd) and stored in `tests/data/pytorch_fixed_batch.json`.

mod common;
use elbo::model::{ModelConfig, Vae};
use rand::SeedableRng;

#[test]
fn fixed_batch_loss_matches_pytorch() {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/data/pytorch_fixed_batch.json").unwrap(),
    )
    .unwrap();
    let mut vae = Vae::<f32>::new(
        ModelConfig::pytorch_example(),
        &mut rand_pcg::Pcg64Mcg::seed_from_u64(1),
    );
    let test = elbo::data::load_dataset(elbo::data::DatasetName::Mnist, &common::mnist_dir())
        .unwrap()
        .1;
    let (x, eps, rows) = elbo::eval::reference::fixed_batch(&vae, &test);
    let mut ws = vae.workspace(rows, 1);
    ws.eps.copy_from_slice(&eps);
    let st = vae.loss_and_grad(&x, rows, &elbo::model::Objective::elbo(1.0), &mut ws);
    for (name, ours) in [
        ("recon", st.recon),
        ("kl", st.kl),
        ("loss", st.recon + st.kl),
    ] {
        let theirs = golden[name].as_f64().unwrap();
        let rel = (ours - theirs).abs() / theirs.abs();
        assert!(
            rel < 1e-4,
            "{name}: elbo {ours} vs PyTorch {theirs} (relative {rel:e})"
        );
    }
}
