//! The GEMM-only floor of one training epoch of the default model: exactly the matrix products of forward,
//! input-gradient and weight-gradient passes (469 steps of batch 128, the last of 96) through elbo's `matmul`,
//! and nothing else. Prints one JSON line per epoch.
//!
//! Usage: `cargo run --release --example gemm_floor -- [EPOCHS] [THREADS]`.

use elbo::core::gemm::{matmul, n, t};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let epochs = args.first().copied().unwrap_or(3);
    elbo::core::threads::init(args.get(1).copied().unwrap_or(0));
    // (fan_in, fan_out, needs dX): encoder 784→400, head 400→40, decoder 20→400, 400→784.
    let layers = [
        (784, 400, false),
        (400, 40, true),
        (20, 400, true),
        (400, 784, true),
    ];
    let max = 128 * 784;
    let x = vec![0.5f32; max];
    let mut y = vec![0f32; max];
    let mut dx = vec![0f32; max];
    let w: Vec<Vec<f32>> = layers.iter().map(|&(i, o, _)| vec![0.01; i * o]).collect();
    let mut gw: Vec<Vec<f32>> = layers.iter().map(|&(i, o, _)| vec![0.0; i * o]).collect();
    let batches: Vec<usize> = std::iter::repeat_n(128, 468).chain([96]).collect();
    for epoch in 1..=epochs {
        let start = Instant::now();
        for &b in &batches {
            for (l, &(fi, fo, _)) in layers.iter().enumerate() {
                matmul(&mut y, n(&x[..b * fi]), t(&w[l][..]), b, fo, fi, false);
            }
            for (l, &(fi, fo, need_dx)) in layers.iter().enumerate().rev() {
                if need_dx {
                    matmul(&mut dx, n(&y[..b * fo]), n(&w[l][..]), b, fi, fo, false);
                }
                matmul(
                    &mut gw[l],
                    t(&y[..b * fo]),
                    n(&x[..b * fi]),
                    fo,
                    fi,
                    b,
                    true,
                );
            }
        }
        println!(
            "{{\"epoch\": {epoch}, \"seconds\": {}}}",
            start.elapsed().as_secs_f64()
        );
    }
    std::hint::black_box((&y, &dx, &gw));
}
