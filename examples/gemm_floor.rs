//! The GEMM-only floor of one training epoch: exactly the matrix products of the forward, input-gradient and
//! weight-gradient passes through elbo's `matmul`, and nothing else. Prints one JSON line per epoch.
//!
//! Usage: `cargo run --release --example gemm_floor -- [EPOCHS] [THREADS] [WORKLOAD]`, WORKLOAD being
//! `default` (784-400-20, 469 steps of batch 128, the last of 96) or `iwae` (784-200-200-50 tanh with k = 50:
//! 3000 steps, the encoder at 20 rows and the decoder at 1000).

use elbo::core::gemm::{matmul, n, t};
use std::time::Instant;

/// One dense layer's products: rows, fan-in, fan-out, and whether its input gradient is needed.
type Layer = (usize, usize, usize, bool);

fn main() {
    // Sized before the products start, and run on a worker of the pool as `elbo train` runs its steps, so the
    // split products hand work to a spinning peer rather than waking a sleeping one.
    let threads = std::env::args()
        .nth(2)
        .map_or(0, |a| a.parse().expect("a number"));
    elbo::core::threads::init(threads);
    elbo::core::threads::run(products);
}

fn products() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| args.get(i).map_or(d, |a| a.parse().expect("a number"));
    let epochs = num(0, 3);
    elbo::core::threads::init(num(1, 0));
    let (layers, steps): (Vec<Layer>, Vec<usize>) =
        match args.get(2).map_or("default", |s| s.as_str()) {
            // Encoder 784→400, head 400→40, decoder 20→400, 400→784; the last batch has 96 rows.
            "default" => (
                vec![
                    (128, 784, 400, false),
                    (128, 400, 40, true),
                    (128, 20, 400, true),
                    (128, 400, 784, true),
                ],
                std::iter::repeat_n(128, 468).chain([96]).collect(),
            ),
            // Encoder 784→200→200→100 on the batch, decoder 50→200→200→784 on its 50 draws per image.
            "iwae" => (
                vec![
                    (20, 784, 200, false),
                    (20, 200, 200, true),
                    (20, 200, 100, true),
                    (1000, 50, 200, true),
                    (1000, 200, 200, true),
                    (1000, 200, 784, true),
                ],
                vec![20; 3000],
            ),
            other => panic!("unknown workload {other}: default or iwae"),
        };
    let max = layers.iter().map(|l| l.0 * l.1.max(l.2)).max().unwrap_or(0);
    let x = vec![0.5f32; max];
    let mut y = vec![0f32; max];
    let mut dx = vec![0f32; max];
    let w: Vec<Vec<f32>> = layers.iter().map(|l| vec![0.01; l.1 * l.2]).collect();
    let mut gw: Vec<Vec<f32>> = layers.iter().map(|l| vec![0.0; l.1 * l.2]).collect();
    for epoch in 1..=epochs {
        let start = Instant::now();
        for &b in &steps {
            // Rows scale with the step's batch (the last default batch is smaller).
            let rows = |r: usize| r * b / steps[0];
            for (l, &(r, fi, fo, _)) in layers.iter().enumerate() {
                let r = rows(r);
                matmul(&mut y, n(&x[..r * fi]), t(&w[l][..]), r, fo, fi, false);
            }
            for (l, &(r, fi, fo, need_dx)) in layers.iter().enumerate().rev() {
                let r = rows(r);
                if need_dx {
                    matmul(&mut dx, n(&y[..r * fo]), n(&w[l][..]), r, fi, fo, false);
                }
                matmul(
                    &mut gw[l],
                    t(&y[..r * fo]),
                    n(&x[..r * fi]),
                    fo,
                    fi,
                    r,
                    true,
                );
            }
        }
        let flops: f64 = steps
            .iter()
            .map(|&b| {
                layers
                    .iter()
                    .map(|&(r, fi, fo, dx)| {
                        let r = (r * b / steps[0]) as f64;
                        2.0 * r * (fi * fo) as f64 * if dx { 3.0 } else { 2.0 }
                    })
                    .sum::<f64>()
            })
            .sum();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{{\"epoch\": {epoch}, \"seconds\": {secs}, \"gflop\": {}, \"gflops_per_s\": {}}}",
            flops / 1e9,
            flops / 1e9 / secs
        );
    }
    std::hint::black_box((&y, &dx, &gw));
}
