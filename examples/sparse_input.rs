//! The first layer's two products with its input, `y = x·W` and `dW = xᵀ·dy`, at the default model's shape
//! (batch 128, 784 → 400): dense with the weight `[out, in]` (as PyTorch stores it), dense with it `[in, out]`,
//! and sparse over the input's nonzero values (`core::sparse`, counting the time to find them) with it
//! `[in, out]`, for inputs of several densities. Prints one line per density: medians in µs, and sparse over the
//! faster dense layout. This is where `core::sparse::max_density` comes from.
//!
//! Usage: `cargo run --release --example sparse_input -- [THREADS] [REPEATS]`; `ELBO_DENSITIES=0.1,0.2` chooses.

use elbo::core::gemm::{matmul, n, t};
use elbo::core::sparse::{self, Nonzeros};
use std::time::Instant;

fn main() {
    let threads = std::env::args()
        .nth(1)
        .map_or(0, |a| a.parse().expect("a number"));
    elbo::core::threads::init(threads);
    elbo::core::threads::run(probe);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn micros(t0: Instant, t1: Instant) -> f64 {
    (t1 - t0).as_secs_f64() * 1e6
}

fn probe() {
    let repeats: usize = std::env::args()
        .nth(2)
        .map_or(200, |a| a.parse().expect("a number"));
    let (rows, fi, fo) = (128, 784, 400);
    let w: Vec<f32> = (0..fi * fo)
        .map(|k| (k as f32 * 0.71).cos() * 0.05)
        .collect();
    let dy: Vec<f32> = (0..rows * fo).map(|k| (k as f32 * 0.53).sin()).collect();
    let (mut y, mut g) = (vec![0f32; rows * fo], vec![0f32; fi * fo]);
    let mut nz = Nonzeros::default();
    println!(
        "density | fwd [out,in] | fwd [in,out] | fwd sparse | dW [out,in] | dW [in,out] | dW sparse | sparse / best dense (both)"
    );
    for density in densities() {
        // A fixed pseudo-random pattern (a 64-bit LCG) of the given density.
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        let x: Vec<f32> = (0..rows * fi)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 40) as f64 / (1u64 << 24) as f64;
                if u < density {
                    (u / density) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let mut times = vec![Vec::new(); 8];
        for _ in 0..repeats {
            let t0 = Instant::now();
            matmul(&mut y, n(&x), t(&w), rows, fo, fi, false);
            let t1 = Instant::now();
            matmul(&mut y, n(&x), n(&w), rows, fo, fi, false);
            let t2 = Instant::now();
            assert!(nz.of(&x, rows, fi, usize::MAX));
            let tf = Instant::now();
            sparse::forward(&w, &nz, &mut y, fi, fo);
            let t3 = Instant::now();
            matmul(&mut g, t(&dy), n(&x), fo, fi, rows, false);
            let t4 = Instant::now();
            matmul(&mut g, t(&x), n(&dy), fi, fo, rows, false);
            let t5 = Instant::now();
            nz.by_columns(fi);
            let tg = Instant::now();
            sparse::weight_grad(&mut g, &nz, &dy, fi, fo, false);
            let t6 = Instant::now();
            times[6].push(micros(t2, tf));
            times[7].push(micros(t5, tg));
            for (k, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6)]
                .into_iter()
                .enumerate()
            {
                times[k].push(micros(a, b));
            }
        }
        let m: Vec<f64> = times.into_iter().map(median).collect();
        let dense = (m[0] + m[3]).min(m[1] + m[4]);
        println!(
            "{density:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}",
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            (m[2] + m[5]) / dense
        );
        println!(
            "     of which finding the nonzeros by row {:.0}, by column {:.0}",
            m[6], m[7]
        );
    }
}

/// The densities to try: `ELBO_DENSITIES` (comma-separated) or a sweep around MNIST's 0.19.
fn densities() -> Vec<f64> {
    std::env::var("ELBO_DENSITIES").map_or(vec![0.1, 0.19, 0.25, 0.3, 0.4, 0.5], |v| {
        v.split(',')
            .map(|d| d.parse().expect("a density"))
            .collect()
    })
}
