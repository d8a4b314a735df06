//! Nanoseconds per value of the fused element-wise kernels on one thread, at the shape of one eval chunk
//! (512 rows of 784 MNIST pixels), with and without gradients, so a kernel change is timed alone.
//!
//! Usage: `cargo run --release --example kernel_cost -- [REPEATS]` (default 400).

use elbo::core::activation::Activation;
use elbo::core::ops::bernoulli_nll;
use rand::{RngExt, SeedableRng};
use std::time::Instant;

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .map_or(400, |a| a.parse().expect("a number"));
    elbo::core::threads::init(1);
    let (rows, d) = (512usize, 784usize);
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
    // Logits spread like a trained decoder's (mostly confident background, some unsure strokes); the kernels are
    // branch-free, so the values do not change their cost.
    let logits: Vec<f32> = (0..rows * d)
        .map(|_| rng.random_range(-15.0f32..8.0))
        .collect();
    let x: Vec<f32> = (0..d).map(|_| f32::from(rng.random_bool(0.2))).collect();
    let mut buf = logits.clone();
    let mut nll = vec![0f32; rows];
    // Every timing below includes restoring the inputs; this is that copy alone, to subtract.
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..reps {
            buf.copy_from_slice(&logits);
            std::hint::black_box(&mut buf);
        }
        best = best.min(start.elapsed().as_secs_f64() / reps as f64);
    }
    println!(
        "{:<28} {:.3} ns/value",
        "copy",
        best * 1e9 / (rows * d) as f64
    );
    for (name, grad) in [
        ("bernoulli, value", None),
        ("bernoulli, value + gradient", Some(1.0)),
    ] {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..reps {
                buf.copy_from_slice(&logits);
                bernoulli_nll(&mut buf, &x, d, rows, &mut nll, grad);
            }
            best = best.min(start.elapsed().as_secs_f64() / reps as f64);
        }
        // The copy that restores the logits is timed too; it is a small part at this size.
        println!("{name:<28} {:.3} ns/value", best * 1e9 / (rows * d) as f64);
    }
    // The decoder's bias-and-activation passes: ReLU over its 400 hidden units, the bias alone over the logits.
    for (name, act, cols) in [
        ("relu + bias, 400 wide", Activation::Relu, 400),
        ("bias, 784 wide", Activation::Identity, d),
    ] {
        let bias: Vec<f32> = (0..cols).map(|j| j as f32 * 1e-3 - 0.2).collect();
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..reps {
                buf[..rows * cols].copy_from_slice(&logits[..rows * cols]);
                act.forward_bias(&mut buf[..rows * cols], &bias);
            }
            best = best.min(start.elapsed().as_secs_f64() / reps as f64);
        }
        println!(
            "{name:<28} {:.3} ns/value",
            best * 1e9 / (rows * cols) as f64
        );
    }
    std::hint::black_box(&nll);
}
