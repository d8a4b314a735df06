//! Embedding a trained model: open a run, encode an image held in memory, decode its code.
//! `cargo run --release --example embed -- runs/mnist` (after `elbo train`).
use elbo::{Model, data::numpy::MemArray};

fn main() -> elbo::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "runs/mnist".into());
    let model = Model::open(dir.as_ref())?;
    let s = model.item_shape();
    // One image as 8-bit levels, as a uint8 NumPy array holds it: white stripes on black.
    let pixels = (0..s.len())
        .map(|i| if i % 7 < 3 { 255 } else { 0 })
        .collect();
    let x = MemArray::uint8(vec![1, s.height, s.width, s.channels], pixels);
    let code = model.encode(&model.items(x, None)?)?;
    let image = model.decode(&code.mu, &[])?;
    let mean = image.iter().sum::<f32>() / image.len() as f32;
    println!(
        "code {:?}; its decoding's mean intensity {mean:.3}",
        code.mu
    );
    Ok(())
}
