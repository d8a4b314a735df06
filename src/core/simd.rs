//! f32 fast paths for the element-wise hot spots, compiled for AVX-512 and AVX2 and picked at run time, so one
//! binary runs on any x86-64 and uses the widest vectors the CPU has.
//!
//! The maths is plain Rust that LLVM vectorises once the target features are enabled; exp and ln are
//! polynomial approximations (relative error ~1e-7) because libm's scalar calls cannot be vectorised.

/// Calls `$body` (an `#[inline(always)]` function call) compiled for the best available instruction set.
macro_rules! dispatch {
    ($name:ident($($arg:ident: $ty:ty),*) => $body:ident) => {
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) { $body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) { $body($($arg),*) }
                if has_avx512() {
                    // SAFETY: the CPU has every feature v4 was compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above, for v3.
                    return unsafe { v3($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

/// Runs `f` compiled for the widest vectors the CPU has, as [`dispatch!`] does for the named kernels: for the
/// generic element-wise loops of `core` (batch norm, the ReLU family, per-column sums, col2im), which the crate's
/// baseline target builds for SSE2 only. What `f` calls is compiled so only where it is inlined: mark the closures
/// `#[inline(always)]`. The same bits on every path: LLVM vectorises without reassociating or fusing anything.
#[inline(always)]
pub(crate) fn widest<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
        unsafe fn v4<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn v3<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if has_avx512() {
            // SAFETY: the CPU has every feature v4 was compiled for.
            return unsafe { v4(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above, for v3.
            return unsafe { v3(f) };
        }
    }
    f()
}

/// Whether the CPU has the AVX-512 subsets that [`widest`] and the named kernels run on.
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The polynomial with coefficients `c` (highest degree first) at `x`, in fused multiply-adds: as fast as plain
/// multiplies where the CPU has FMA, and correctly rounded everywhere, so every code path gives the same bits.
#[inline(always)]
fn horner<const N: usize>(x: f32, c: [f32; N]) -> f32 {
    let mut acc = c[0];
    for &k in &c[1..] {
        acc = acc.mul_add(x, k);
    }
    acc
}

/// e^x for x ≤ 0 (the only range the loss needs), branch-free.
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    let x = x.max(-87.0);
    // Adding 1.5·2²³ rounds to the nearest integer (ties to even) and leaves it in the low mantissa bits, so n
    // and 2ⁿ come without a float-to-int conversion, which Rust's saturating `as` would keep scalar.
    const MAGIC: f32 = 12_582_912.0;
    let shifted = x * std::f32::consts::LOG2_E + MAGIC;
    let n = shifted - MAGIC;
    let r = n.mul_add(-1.428_606_8e-6, n.mul_add(-0.693_145_75, x));
    // Least-squares fit of e^r on [−ln2/2, ln2/2] at Chebyshev nodes: 1e-7 relative error, as good as f32 allows.
    let p = horner(
        r,
        [
            0.001_394_858_1,
            0.008_375_13,
            0.041_666_217,
            0.166_664_15,
            0.5,
            1.0,
            1.0,
        ],
    );
    let n_int = shifted.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    f32::from_bits(((n_int + 127) << 23) as u32) * p
}

/// ln(1 + e) for e in [0, 1], branch-free: 2·atanh(s) with s = e/(2 + e) ≤ 1/3, whose odd series converges
/// by a factor 9 per term; relative error below 1e-7 everywhere, including tiny e.
#[inline(always)]
fn log1p_unit(e: f32) -> f32 {
    e * horner(
        e,
        [
            0.005_185_917,
            -0.029_209_9,
            0.077_539_74,
            -0.135_838_82,
            0.190_559_24,
            -0.248_256_39,
            0.333_160_1,
            -0.499_992_55,
            0.999_999_94,
        ],
    )
}

/// Lanes processed together; independent partial sums also keep the row sum accurate.
const LANES: usize = 32;

/// Chunks of lanes between renormalisations of the running products: every factor is below 2, so 64 of them
/// stay below 2⁶⁴, far from f32's overflow at 2¹²⁸.
const RENORM: usize = 64;

/// A logit for padding lanes: its term is exactly zero (e^−87 vanishes beside 1, and its target is 0).
const PAD_LOGIT: f32 = -200.0;

/// Splits the exponent off each running product, leaving mantissas in [1, 2): exact, so no rounding is added.
#[inline(always)]
fn renormalise(prod: &mut [f32; LANES], exps: &mut [i32; LANES]) {
    for j in 0..LANES {
        let bits = prod[j].to_bits();
        exps[j] += ((bits >> 23) as i32) - 127;
        prod[j] = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    }
}

/// One chunk of lanes: adds max(l, 0) − t·l to `lin` and multiplies `prod` by 1 + e^−|l|, whose logarithm is the
/// rest of the term. One product instead of one log1p per pixel: the kernel's most expensive step becomes one
/// multiply, and the logarithm is taken once per lane and row. With `GRAD`, logits become `scale·(σ(l) − t)`.
#[inline(always)]
fn bernoulli_lanes<const GRAD: bool>(
    l: &mut [f32],
    t: &[f32],
    scale: f32,
    lin: &mut [f32; LANES],
    prod: &mut [f32; LANES],
) {
    let (l, t) = (&mut l[..LANES], &t[..LANES]);
    // Two passes over the lanes: each keeps fewer constants live, so nothing spills from AVX2's 16 registers.
    let mut e = [0.0f32; LANES];
    for j in 0..LANES {
        e[j] = exp_neg(-l[j].abs());
    }
    for j in 0..LANES {
        let (lj, one_e) = (l[j], 1.0 + e[j]);
        lin[j] += lj.max(0.0) - t[j] * lj;
        prod[j] *= one_e;
        if GRAD {
            let num = if lj >= 0.0 { 1.0 } else { e[j] };
            l[j] = scale * (num / one_e - t[j]);
        }
    }
}

/// Bernoulli NLL of one row (logits against targets); with `GRAD`, logits are replaced by their gradient.
///
/// Σ ln(1 + eʲ) is taken as ln Π(1 + eʲ) per lane. Each product rounds once per factor, as each log1p did, so
/// the row's sum is as accurate as before (tested against f64).
#[inline(always)]
fn bernoulli_row<const GRAD: bool>(logits: &mut [f32], target: &[f32], scale: f32) -> f32 {
    let mut lin = [0.0f32; LANES];
    let mut prod = [1.0f32; LANES];
    let mut exps = [0i32; LANES];
    let mut lc = logits.chunks_exact_mut(LANES);
    let mut tc = target.chunks_exact(LANES);
    for (i, (l, t)) in (&mut lc).zip(&mut tc).enumerate() {
        bernoulli_lanes::<GRAD>(l, t, scale, &mut lin, &mut prod);
        if i % RENORM == RENORM - 1 {
            renormalise(&mut prod, &mut exps);
        }
    }
    let (lr, tr) = (lc.into_remainder(), tc.remainder());
    if !lr.is_empty() {
        // The ragged end goes through the same lanes, padded with terms that are exactly zero.
        let (mut l, mut t) = ([PAD_LOGIT; LANES], [0.0f32; LANES]);
        l[..lr.len()].copy_from_slice(lr);
        t[..tr.len()].copy_from_slice(tr);
        bernoulli_lanes::<GRAD>(&mut l, &t, scale, &mut lin, &mut prod);
        if GRAD {
            lr.copy_from_slice(&l[..lr.len()]);
        }
    }
    renormalise(&mut prod, &mut exps);
    let mut sum = [0.0f32; LANES];
    for j in 0..LANES {
        // ln(m·2ᴱ) = E·ln 2 + ln(1 + (m − 1)), with m − 1 exact in [0, 1).
        sum[j] =
            lin[j] + (exps[j] as f32).mul_add(std::f32::consts::LN_2, log1p_unit(prod[j] - 1.0));
    }
    sum.iter().sum()
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bernoulli_rows_body(
    logits: &mut [f32],
    x: &[f32],
    d: usize,
    repeat: usize,
    first_row: usize,
    nll: &mut [f32],
    grad: bool,
    scale: f32,
) {
    for (r, (row, out)) in logits.chunks_exact_mut(d).zip(nll.iter_mut()).enumerate() {
        let t = (first_row + r) / repeat;
        let target = &x[t * d..(t + 1) * d];
        *out = if grad {
            bernoulli_row::<true>(row, target, scale)
        } else {
            bernoulli_row::<false>(row, target, scale)
        };
    }
}

dispatch!(bernoulli_rows(logits: &mut [f32], x: &[f32], d: usize, repeat: usize, first_row: usize, nll: &mut [f32], grad: bool, scale: f32) => bernoulli_rows_body);

/// tanh, branch-free: an odd Taylor polynomial below |x| = 0.4 (its first omitted term is under 2e-9 there), and
/// (1 − e^−2|x|)/(1 + e^−2|x|) above, where the subtraction loses nothing; NaN stays NaN so divergence shows.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let a2 = a * a;
    let small = a
        * (1.0
            + a2 * (-1.0 / 3.0
                + a2 * (2.0 / 15.0
                    + a2 * (-17.0 / 315.0
                        + a2 * (62.0 / 2835.0
                            + a2 * (-1382.0 / 155_925.0 + a2 * (21844.0 / 6_081_075.0)))))));
    let e = exp_neg(-2.0 * a);
    let large = (1.0 - e) / (1.0 + e);
    let t = if a < 0.4 { small } else { large };
    if x.is_nan() { x } else { t.copysign(x) }
}

/// `y[r, j] = tanh(y[r, j] + bias[j])` over whole rows.
#[inline(always)]
fn tanh_bias_body(y: &mut [f32], bias: &[f32]) {
    for row in y.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = tanh(*v + b);
        }
    }
}

dispatch!(tanh_bias(y: &mut [f32], bias: &[f32]) => tanh_bias_body);

/// Adam's coefficients for one step: β₁, β₂, 1−β₁, 1−β₂, lr/(1−β₁ᵗ), 1/√(1−β₂ᵗ), ε.
pub(crate) type AdamCoeffs = [f32; 7];

/// Adam's update of a slice, PyTorch's formula.
#[inline(always)]
fn adam_body(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: &AdamCoeffs) {
    let [b1, b2, one_b1, one_b2, step, inv_sqrt_bc2, eps] = *c;
    let n = p.len().min(g.len()).min(m.len()).min(v.len());
    let (p, g, m, v) = (&mut p[..n], &g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        let gi = g[i];
        let mi = b1 * m[i] + one_b1 * gi;
        let vi = b2 * v[i] + one_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step * mi / (vi.sqrt() * inv_sqrt_bc2 + eps);
    }
}

dispatch!(adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: &AdamCoeffs) => adam_body);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_ln_are_accurate() {
        for i in 0..=2000 {
            let x = -(i as f32) * 0.04;
            let (got, want) = (exp_neg(x) as f64, (x as f64).exp());
            assert!(
                (got - want).abs() <= 3e-7 * want + 1e-38,
                "exp({x}) = {got} vs {want}"
            );
        }
        for i in 0..=1000 {
            let e = if i == 0 { 1e-30 } else { i as f32 / 1000.0 };
            let (got, want) = (log1p_unit(e) as f64, (e as f64).ln_1p());
            assert!(
                (got - want).abs() <= 2e-7 * want,
                "log1p({e}) = {got} vs {want}"
            );
        }
    }

    #[test]
    fn tanh_is_accurate_everywhere() {
        let mut worst = 0.0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            let (got, want) = (tanh(x) as f64, (x as f64).tanh());
            let err = (got - want).abs() / want.abs().max(1e-30);
            worst = worst.max(if want == 0.0 { got.abs() } else { err });
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        for x in [
            1e-30f32,
            -1e-20,
            10.0,
            -50.0,
            1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ] {
            assert!(
                ((tanh(x) as f64) - (x as f64).tanh()).abs()
                    <= 1e-7 * (x as f64).tanh().abs().max(1e-30),
                "{x}"
            );
        }
        assert!(tanh(f32::NAN).is_nan());
        let (mut y, bias) = (vec![0.5f32, -2.0, 0.1, 3.0], [0.1f32, -0.1]);
        tanh_bias(&mut y, &bias);
        assert!(
            (y[1] as f64 - (-2.1f64).tanh()).abs() < 1e-6
                && (y[2] as f64 - 0.2f64.tanh()).abs() < 1e-6
        );
    }

    #[test]
    fn fast_bernoulli_matches_f64_reference() {
        // Rows shorter than the lanes, MNIST's ragged 784, and rows long enough to renormalise the products
        // (over 64 chunks of 32) several times; logits from confident to saturated, targets binary and grey.
        for (d, spread) in [
            (5usize, 2.0f32),
            (37, 9.0),
            (784, 9.0),
            (784, 60.0),
            (3 * 64 * 32 + 17, 60.0),
        ] {
            let logits: Vec<f32> = (0..3 * d)
                .map(|i| ((i * 7919 % 601) as f32 - 300.0) / spread)
                .collect();
            let x: Vec<f32> = (0..d).map(|i| (i % 5) as f32 / 4.0).collect();
            let mut fast = logits.clone();
            let mut nll = vec![0.0f32; 3];
            bernoulli_rows(&mut fast, &x, d, 3, 0, &mut nll, true, 0.5);
            let mut value_only = vec![0.0f32; 3];
            bernoulli_rows(
                &mut logits.clone(),
                &x,
                d,
                3,
                0,
                &mut value_only,
                false,
                0.0,
            );
            assert_eq!(
                nll, value_only,
                "the value does not depend on the gradient (d = {d})"
            );
            let mut slow: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let mut nll64 = vec![0.0f64; 3];
            crate::core::ops::bernoulli_nll_generic(&mut slow, &x64, d, 3, &mut nll64, Some(0.5));
            for r in 0..3 {
                // f32's own rounding of the row (~1e-7 relative): a lost factor of 2 in one lane would be 0.69.
                let tol = 1e-6 * nll64[r].abs() + 1e-5;
                assert!(
                    (nll[r] as f64 - nll64[r]).abs() < tol,
                    "d = {d}: {} vs {}",
                    nll[r],
                    nll64[r]
                );
            }
            for (a, b) in fast.iter().zip(&slow) {
                assert!((*a as f64 - b).abs() < 1e-6, "gradient {a} vs {b}");
            }
        }
    }

    #[test]
    fn fast_bernoulli_keeps_nan_and_tiny_terms() {
        let d = 100;
        let mut logits = vec![-30.0f32; d];
        let x = vec![0.0f32; d];
        let mut nll = vec![0.0f32];
        bernoulli_rows(&mut logits.clone(), &x, d, 1, 0, &mut nll, false, 0.0);
        // Each term is ln(1 + e^−30) ≈ 9.4e-14: the sum is tiny but never negative.
        assert!((0.0..1e-6).contains(&nll[0]), "{}", nll[0]);
        logits[63] = f32::NAN;
        bernoulli_rows(&mut logits, &x, d, 1, 0, &mut nll, false, 0.0);
        assert!(nll[0].is_nan(), "a NaN logit must show in the loss");
    }
}
