//! Cost of one importance sample in `elbo eval` against the training step's forward pass per image.
//!
//! Usage: `cargo run --release --example eval_cost -- RUN_DIR [IMAGES] [K]` (defaults 200 images, K = 5000).
//! Times the forward pass (loss, no gradient) over one epoch of batches of 128, and the importance-sampled
//! estimate on the first IMAGES test images; prints both per item and their ratio as JSON.

use elbo::data::{Batcher, Binarize};
use rand::SeedableRng;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let run = std::path::PathBuf::from(
        args.get(1)
            .ok_or_else(|| anyhow::anyhow!("usage: eval_cost RUN_DIR [IMAGES] [K]"))?,
    );
    let images: usize = args.get(2).map_or(Ok(200), |a| a.parse())?;
    let k: usize = args.get(3).map_or(Ok(5000), |a| a.parse())?;
    elbo::core::threads::init(0);
    let ck = elbo::train::load_run(&run)?;
    let splits = elbo::train::load_splits(&ck.config, None)?;
    let vae = &ck.vae;
    let (batch, d) = (128, vae.config.input_dim());
    let mut ws = vae.workspace(batch, 1);
    let mut x = vec![0.0f32; batch * d];
    let copy = Batcher {
        batch_size: batch,
        binarize: Binarize::None,
        flip: false,
    };
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
    let order: Vec<usize> = (0..splits.train.len()).collect();
    let forward_secs = elbo::core::threads::run(|| {
        let start = Instant::now();
        for idx in order.chunks(batch) {
            let rows = idx.len();
            copy.fill(&splits.train, idx, &mut rng, &mut x[..rows * d]);
            vae.draw_eps(rows, &mut ws, &mut rng);
            std::hint::black_box(vae.loss(&x[..rows * d], rows, &mut ws));
        }
        start.elapsed().as_secs_f64()
    });
    let test = splits.test.truncated(images);
    let start = Instant::now();
    let est =
        elbo::eval::estimate_log_likelihood(vae, &test, k, 1, &|_| true).expect("never stopped");
    let eval_secs = start.elapsed().as_secs_f64();
    let per_image = forward_secs / order.len() as f64;
    let per_sample = eval_secs / (test.len() * k) as f64;
    println!(
        "{{\"forward_us_per_image\": {:.3}, \"eval_us_per_importance_sample\": {:.3}, \"ratio\": {:.3}, \"images\": {}, \"k\": {k}, \"nll\": {:.3}}}",
        per_image * 1e6,
        per_sample * 1e6,
        per_sample / per_image,
        test.len(),
        est.nll
    );
    Ok(())
}
