//! Writes one fixed batch, the model's weights, and elbo's loss and gradients to a safetensors file, so that
//! `bench/reference.py` can recompute all of it independently in PyTorch.
//!
//! Usage: `cargo run --release --example fixed_batch -- OUT.safetensors [RUN_DIR]` (without RUN_DIR: the
//! seed-1 initialisation of the PyTorch-example model). Needs MNIST (`$ELBO_DATA_DIR` or the cache).

use elbo::data::{DatasetName, load_dataset, resolve_data_dir};
use elbo::model::{ModelConfig, Vae};
use rand::SeedableRng;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("usage: fixed_batch OUT.safetensors [RUN_DIR]"))?;
    let mut vae = match args.get(2) {
        Some(run) => elbo::train::load_run(std::path::Path::new(run))?.vae,
        None => Vae::<f32>::new(
            ModelConfig::pytorch_example(),
            &mut rand_pcg::Pcg64Mcg::seed_from_u64(1),
        ),
    };
    let (x, eps, rows) = elbo::eval::reference::fixed_batch(
        &vae,
        &load_dataset(
            DatasetName::Mnist,
            &resolve_data_dir(DatasetName::Mnist, None),
        )?
        .1,
    );
    let mut ws = vae.workspace(rows, 1);
    ws.eps.copy_from_slice(&eps);
    vae.params.zero_grad();
    let st = vae.loss_and_grad(&x, rows, &elbo::model::Objective::elbo(1.0), &mut ws);
    let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = vec![
        ("x".into(), vec![rows, vae.config.input_dim()], bytes(&x)),
        ("eps".into(), vec![rows, vae.latent()], bytes(&eps)),
    ];
    for s in &vae.params.specs {
        tensors.push((
            s.name.clone(),
            s.shape.clone(),
            bytes(&vae.params.data[s.range()]),
        ));
        tensors.push((
            format!("grad.{}", s.name),
            s.shape.clone(),
            bytes(&vae.params.grad[s.range()]),
        ));
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let mut meta = HashMap::new();
    meta.insert("config".to_string(), serde_json::to_string(&vae.config)?);
    meta.insert("recon".to_string(), st.recon.to_string());
    meta.insert("kl".to_string(), st.kl.to_string());
    std::fs::write(out, safetensors::serialize(views, Some(meta))?)?;
    println!(
        "{{\"recon\": {}, \"kl\": {}, \"loss\": {}}}",
        st.recon,
        st.kl,
        st.recon + st.kl
    );
    Ok(())
}
