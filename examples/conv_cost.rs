//! Microseconds per batch of each piece of the Keras example's convolutions (batch 128, MNIST 28×28): the
//! im2col gathers, col2im scatters and products of every layer's forward and backward, so a change to one piece
//! is timed alone at the exact shapes.
//!
//! With `dsprites`, the same for the β-TC-VAE preset's net on dSprites instead (batch 64, 64×64 grey, 4×4 stride 2:
//! 1→32→32→64→64 and back), with each layer's GFLOP/s and its largest products alone.
//!
//! Usage: `cargo run --release --example conv_cost -- [REPEATS] [THREADS] [dsprites]` (default 50, all cores).

use elbo::core::conv::{Conv2d, ConvTranspose2d, Shape};
use elbo::core::params::Params;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..reps)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dsprites = args.iter().any(|a| a == "dsprites");
    let numbers: Vec<usize> = args
        .iter()
        .filter(|a| *a != "dsprites")
        .map(|a| a.parse().expect("a number"))
        .collect();
    let reps = numbers.first().copied().unwrap_or(50);
    let threads = numbers.get(1).copied().unwrap_or(0);
    elbo::core::threads::init(threads);
    elbo::core::threads::run(move || {
        if dsprites {
            return dsprites_layers(reps);
        }
        layers(reps);
        products(reps);
        pieces(reps)
    });
}

/// Forward and backward of each layer of `configs/dsprites-beta-tcvae.toml`'s net at batch 64, with GFLOP/s
/// (a forward is one product, a backward two; the first layer's backward has no `dx`, as in training).
fn dsprites_layers(reps: usize) {
    let rows = 64;
    let sh = |h, c| Shape { h, w: h, c };
    let mut p = Params::<f32>::default();
    let g4 = (4, 2, 1);
    let convs = [
        Conv2d::new(&mut p, "c1", sh(64, 1), 32, g4).unwrap(),
        Conv2d::new(&mut p, "c2", sh(32, 32), 32, g4).unwrap(),
        Conv2d::new(&mut p, "c3", sh(16, 32), 64, g4).unwrap(),
        Conv2d::new(&mut p, "c4", sh(8, 64), 64, g4).unwrap(),
    ];
    let deconvs = [
        ConvTranspose2d::new(&mut p, "d1", sh(4, 64), sh(8, 64), g4).unwrap(),
        ConvTranspose2d::new(&mut p, "d2", sh(8, 64), sh(16, 32), g4).unwrap(),
        ConvTranspose2d::new(&mut p, "d3", sh(16, 32), sh(32, 32), g4).unwrap(),
        ConvTranspose2d::new(&mut p, "d4", sh(32, 32), sh(64, 1), g4).unwrap(),
    ];
    for (i, v) in p.data.iter_mut().enumerate() {
        *v = ((i * 7919 % 1000) as f32 - 500.0) * 1e-4;
    }
    let mut b = Bufs::new(rows * 64 * 64 * 32, rows * 32 * 32 * 16 * 32, p.data.len());
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "layer (batch 64)", "fw us", "bw us", "im2col", "col2im", "fw GF/s", "bw GF/s"
    );
    let (mut fw_all, mut bw_all) = (0.0, 0.0);
    for (i, c) in convs.iter().enumerate() {
        let flops = 2.0 * (rows * c.geo.col_len(1) * c.out.c) as f64;
        let first = i == 0;
        let [fw, bw, gather, scatter] = conv_times(c, &p.data, &mut b, rows, reps, !first);
        let name = format!(
            "conv {}->{} {}->{}",
            c.geo.big.c, c.out.c, c.geo.big.h, c.out.h
        );
        let bwf = if first { flops } else { 2.0 * flops };
        println!(
            "{name:<26} {fw:>9.0} {bw:>9.0} {gather:>9.0} {scatter:>9.0} {:>8.0} {:>8.0}",
            flops / fw / 1e3,
            bwf / bw / 1e3
        );
        (fw_all, bw_all) = (fw_all + fw, bw_all + bw);
    }
    for c in &deconvs {
        let flops = 2.0 * (rows * c.geo.col_len(1) * c.input.c) as f64;
        let [fw, bw, gather, scatter] = deconv_times(c, &p.data, &mut b, rows, reps);
        let name = format!(
            "convT {}->{} {}->{}",
            c.input.c, c.geo.big.c, c.input.h, c.geo.big.h
        );
        println!(
            "{name:<26} {fw:>9.0} {bw:>9.0} {gather:>9.0} {scatter:>9.0} {:>8.0} {:>8.0}",
            flops / fw / 1e3,
            2.0 * flops / bw / 1e3
        );
        (fw_all, bw_all) = (fw_all + fw, bw_all + bw);
    }
    println!("all layers: forward {fw_all:.0} us, backward {bw_all:.0} us per batch");
    // The second layer's and the third transposed layer's products alone (m, n, k, a transposed, b transposed),
    // and two other ways to the weight gradient: its transpose (the columns as the left operand), and one eighth
    // of the sum over the batch (the time of one of eight parts a split over images would run).
    let shapes = [
        ("conv2 fw 16384x32 k512", 16384, 32, 512, false, true),
        ("conv2 dx 16384x512 k32", 16384, 512, 32, false, false),
        ("conv2 dW 32x512 k16384", 32, 512, 16384, true, false),
        ("convT3 dx 16384x32 k512", 16384, 32, 512, false, true),
        ("convT3 dW 32x512 k16384", 32, 512, 16384, true, false),
        ("dW transposed 512x32 k16384", 512, 32, 16384, true, false),
        ("dW, one of 8 parts, k2048", 32, 512, 2048, true, false),
    ];
    for (name, m, nn, k, ta, tb) in shapes {
        let us = time(reps, || product(&mut b.y, &b.x, &b.col, (m, nn, k, ta, tb)));
        println!(
            "{name:<26} {us:>8.0} us ({:.0} GFLOP/s)",
            2.0 * (m * nn * k) as f64 / us / 1e3
        );
    }
}

fn layers(reps: usize) {
    let rows = 128;
    let sh = |h, c| Shape { h, w: h, c };
    let mut p = Params::<f32>::default();
    let convs = [
        (
            "conv 1->32 28->14",
            Conv2d::new(&mut p, "c1", sh(28, 1), 32, (3, 2, 1)).unwrap(),
        ),
        (
            "conv 32->64 14->7",
            Conv2d::new(&mut p, "c2", sh(14, 32), 64, (3, 2, 1)).unwrap(),
        ),
    ];
    let deconvs = [
        (
            "convT 64->64 7->14",
            ConvTranspose2d::new(&mut p, "d1", sh(7, 64), sh(14, 64), (3, 2, 1)).unwrap(),
        ),
        (
            "convT 64->32 14->28",
            ConvTranspose2d::new(&mut p, "d2", sh(14, 64), sh(28, 32), (3, 2, 1)).unwrap(),
        ),
        (
            "convT 32->1 28->28",
            ConvTranspose2d::new(&mut p, "d3", sh(28, 32), sh(28, 1), (3, 1, 1)).unwrap(),
        ),
    ];
    for (i, v) in p.data.iter_mut().enumerate() {
        *v = ((i * 7919 % 1000) as f32 - 500.0) * 1e-4;
    }
    let mut b = Bufs::new(128 * 28 * 28 * 64, 128 * 196 * 576, p.data.len());
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>10}",
        "layer", "forward", "backward", "im2col", "col2im"
    );
    for (name, c) in &convs {
        let [fw, bw, gather, scatter] = conv_times(c, &p.data, &mut b, rows, reps, c.geo.big.c > 1);
        println!("{name:<22} {fw:>10.0} {bw:>10.0} {gather:>10.0} {scatter:>10.0}");
    }
    for (name, c) in &deconvs {
        let [fw, bw, gather, scatter] = deconv_times(c, &p.data, &mut b, rows, reps);
        println!("{name:<22} {fw:>10.0} {bw:>10.0} {gather:>10.0} {scatter:>10.0}");
    }
}

/// The buffers layers are timed on, each large enough for every layer timed.
struct Bufs {
    x: Vec<f32>,
    y: Vec<f32>,
    dx: Vec<f32>,
    col: Vec<f32>,
    g: Vec<f32>,
}

impl Bufs {
    fn new(values: usize, col: usize, params: usize) -> Bufs {
        Bufs {
            x: (0..values).map(|i| ((i * 31 % 97) as f32) * 0.01).collect(),
            y: vec![0f32; values],
            dx: vec![0f32; values],
            col: vec![0f32; col],
            g: vec![0f32; params],
        }
    }
}

/// Median µs of a convolution's forward, backward (the input's gradient only `with_dx`, as training skips it for
/// the first layer), im2col and col2im.
fn conv_times(
    c: &Conv2d,
    p: &[f32],
    b: &mut Bufs,
    rows: usize,
    reps: usize,
    with_dx: bool,
) -> [f64; 4] {
    let Bufs { x, y, dx, col, g } = b;
    let fw = time(reps, || c.forward(p, x, y, rows, col));
    let bw = time(reps, || {
        let dxo = with_dx.then_some(&mut dx[..]);
        c.backward(p, g, x, y, dxo, rows, col, false)
    });
    let gather = time(reps, || c.geo.im2col(x, col, rows));
    let scatter = time(reps, || c.geo.col2im(col, dx, rows));
    [fw, bw, gather, scatter]
}

/// [`conv_times`] of a transposed convolution, whose input's gradient training always takes.
fn deconv_times(
    c: &ConvTranspose2d,
    p: &[f32],
    b: &mut Bufs,
    rows: usize,
    reps: usize,
) -> [f64; 4] {
    let Bufs { x, y, dx, col, g } = b;
    let fw = time(reps, || c.forward(p, x, y, rows, col));
    let bw = time(reps, || {
        c.backward(p, g, x, y, Some(&mut dx[..]), rows, col, false)
    });
    let gather = time(reps, || c.geo.im2col(x, col, rows));
    let scatter = time(reps, || c.geo.col2im(col, dx, rows));
    [fw, bw, gather, scatter]
}

/// `c = a·b` of shape (m, n, k, a transposed, b transposed), through `matmul` as the layers call it.
fn product(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    (m, nn, k, ta, tb): (usize, usize, usize, bool, bool),
) {
    use elbo::core::gemm::{matmul, n, t};
    let op = |d, transposed| if transposed { t(d) } else { n(d) };
    matmul(c, op(a, ta), op(b, tb), m, nn, k, false)
}

/// The small-channel layers' products alone: as `matmul` splits them, and as one call on one thread.
pub fn products(reps: usize) {
    let big = 100352 * 32;
    let a: Vec<f32> = (0..big).map(|i| ((i * 31 % 97) as f32) * 0.01).collect();
    let b: Vec<f32> = (0..big).map(|i| ((i * 17 % 89) as f32) * 0.01).collect();
    let mut c = vec![0f32; big];
    // (name, m, n, k, a transposed, b transposed)
    let shapes = [
        ("conv1 dW 32x9 k25088", 32, 9, 25088, true, false),
        ("convT3 dW 32x9 k100352", 32, 9, 100352, true, false),
        ("convT3 dx 100352x32 k9", 100352, 32, 9, false, true),
        ("convT3 fw 100352x9 k32", 100352, 9, 32, false, false),
        ("conv1 fw 25088x32 k9", 25088, 32, 9, false, true),
    ];
    for (name, m, nn, k, ta, tb) in shapes {
        let shape = (m, nn, k, ta, tb);
        let split = time(reps, || product(&mut c, &a, &b, shape));
        let one = time(reps, || {
            elbo::core::threads::serial(|| product(&mut c, &a, &b, shape))
        });
        let gf = 2.0 * (m * nn * k) as f64 / split / 1e3;
        println!("{name:<26} split {split:>8.0} us ({gf:.0} GFLOP/s)  one thread {one:>8.0} us");
    }
}

/// The pieces of the last transposed convolution's backward, on the layer's own buffers.
pub fn pieces(reps: usize) {
    use elbo::core::gemm::{matmul, n, t};
    let rows = 128;
    let sh = |h, c| Shape { h, w: h, c };
    let mut p = Params::<f32>::default();
    let c = ConvTranspose2d::new(&mut p, "d3", sh(28, 32), sh(28, 1), (3, 1, 1)).unwrap();
    let m = rows * 784;
    let x: Vec<f32> = (0..m * 32).map(|i| ((i * 31 % 97) as f32) * 0.01).collect();
    let dy: Vec<f32> = (0..m)
        .map(|i| ((i * 17 % 89) as f32) * 0.01 - 0.4)
        .collect();
    let w = vec![0.01f32; 288];
    let mut col = vec![0f32; m * 9];
    let mut dx = vec![0f32; m * 32];
    let mut g = vec![0f32; 288];
    let mut gb = vec![0f32; 1];
    let gather = time(reps, || c.geo.im2col(&dy, &mut col, rows));
    let pdx = time(reps, || matmul(&mut dx, n(&col), t(&w), m, 32, 9, false));
    let pdw = time(reps, || matmul(&mut g, t(&x), n(&col), 32, 9, m, false));
    let bias = time(reps, || {
        elbo::core::threads::serial(|| elbo::core::linear::bias_grad(&mut gb, &dy, false))
    });
    p.data.iter_mut().for_each(|v| *v = 0.01);
    let whole = time(reps, || {
        c.backward(
            &p.data,
            &mut p.grad,
            &x,
            &dy,
            Some(&mut dx),
            rows,
            &mut col,
            false,
        )
    });
    println!(
        "convT3 backward pieces: im2col {gather:.0}, dx {pdx:.0}, dW {pdw:.0}, bias {bias:.0}; whole {whole:.0} us"
    );
}
