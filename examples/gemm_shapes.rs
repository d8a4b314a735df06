//! GFLOP/s of elbo's `matmul` at each product shape of one workload's training step, to see which products
//! keep an epoch from its GEMM floor. Prints one line per product.
//!
//! Usage: `cargo run --release --example gemm_shapes -- [THREADS] [REPEATS] [iwae|default|eval]`: the IWAE k = 50
//! step, the default 784-400-20 step at batch 128, or
//! the decoder of importance-sampled eval (784-400-20, one chunk of draws on one thread, as eval runs it): chunks of
//! 512 and 504 rows, with the weight stored `[out, in]` (training's layout) and `[in, out]` (eval's copy).
//! Shapes are timed in turn within each repeat, and medians printed, so a drift in the machine's speed hits all.

use elbo::core::gemm::{Op, matmul, n, t};
use std::time::Instant;

fn main() {
    // Run on a worker of the pool, as `elbo train` runs its steps (see examples/gemm_floor.rs).
    let threads = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(0);
    elbo::core::threads::init(threads);
    elbo::core::threads::run(shapes);
}

fn shapes() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let eval = all.iter().any(|a| a == "eval");
    let default = all.iter().any(|a| a == "default");
    let args: Vec<usize> = all
        .iter()
        .filter(|a| !matches!(a.as_str(), "eval" | "iwae" | "default"))
        .map(|a| a.parse().expect("a number"))
        .collect();
    elbo::core::threads::init(args.first().copied().unwrap_or(0));
    let reps = args.get(1).copied().unwrap_or(200);
    // (name, m, n, k, a transposed, b transposed): forward x·Wᵀ, input gradient dy·W, weight gradient dyᵀ·x.
    let mut shapes = Vec::new();
    let iwae = [
        (20, 784, 200),
        (20, 200, 200),
        (20, 200, 100),
        (1000, 50, 200),
        (1000, 200, 200),
        (1000, 200, 784),
    ];
    // The default model's layers: encoder 784→400, head 400→40, decoder 20→400, 400→784, at batch 128.
    let mlp = [
        (128, 784, 400),
        (128, 400, 40),
        (128, 20, 400),
        (128, 400, 784),
    ];
    let decoder = [
        (512, 20, 400),
        (504, 20, 400),
        (512, 400, 784),
        (504, 400, 784),
    ];
    let layers: &[(usize, usize, usize)] = if eval {
        &decoder
    } else if default {
        &mlp
    } else {
        &iwae
    };
    for &(rows, fi, fo) in layers {
        shapes.push((format!("fwd {rows}x{fi}->{fo}"), rows, fo, fi, false, true));
        if eval {
            shapes.push((
                format!("fwd {rows}x{fi}->{fo} [in,out]"),
                rows,
                fo,
                fi,
                false,
                false,
            ));
            continue;
        }
        shapes.push((format!("dx  {rows}x{fo}->{fi}"), rows, fi, fo, false, false));
        shapes.push((
            format!("dW  {fo}x{fi} over {rows}"),
            fo,
            fi,
            rows,
            true,
            false,
        ));
    }
    let a = vec![0.5f32; 1000 * 1000];
    let b = vec![0.25f32; 1000 * 1000];
    let mut c = vec![0f32; 1000 * 1000];
    let op = |x: &'static [f32], tr: bool| -> Op<'static, f32> { if tr { t(x) } else { n(x) } };
    let (a, b): (&'static [f32], &'static [f32]) = (a.leak(), b.leak());
    let mut times = vec![Vec::with_capacity(reps); shapes.len()];
    for rep in 0..=reps {
        for (i, &(_, m, nn, k, ta, tb)) in shapes.iter().enumerate() {
            let start = Instant::now();
            matmul(&mut c, op(a, ta), op(b, tb), m, nn, k, tb && ta);
            // The first round only warms up.
            if rep > 0 {
                times[i].push(start.elapsed().as_secs_f64());
            }
        }
    }
    for ((name, m, nn, k, _, _), mut t) in shapes.into_iter().zip(times) {
        t.sort_by(f64::total_cmp);
        let secs = t[t.len() / 2];
        let gflops = 2.0 * (m * nn * k) as f64 / secs / 1e9;
        println!(
            "{name:<32} m={m:<5} n={nn:<5} k={k:<5} {:>8.1} µs {:>7.3} µs/row {gflops:>7.1} GFLOP/s",
            secs * 1e6,
            secs * 1e6 / m as f64
        );
    }
    // A large square product, timed on its own since it evicts the caches: the rate the machine reaches when
    // shapes do not limit it.
    let start = Instant::now();
    for _ in 0..reps.div_ceil(20) {
        matmul(&mut c, n(a), n(b), 1000, 1000, 1000, false);
    }
    let secs = start.elapsed().as_secs_f64() / reps.div_ceil(20) as f64;
    println!(
        "{:<32} {:>8.1} µs {:>7.1} GFLOP/s",
        "peak 1000^3",
        secs * 1e6,
        2e9 / secs / 1e9
    );
    std::hint::black_box(&c);
}
