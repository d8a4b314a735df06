//! 2-D convolution and transposed convolution on NHWC images, forward and backward side by side.
//!
//! Each product is a GEMM plus an im2col gather or col2im scatter: with channels last, the GEMM's output rows are
//! already the output pixels, so no transposition is needed. A transposed convolution is the adjoint of a
//! convolution with the same geometry, so the two share [`Geometry`]. Small images go as one GEMM over the whole
//! batch; large ones image by image while each image's columns are in cache ([`Geometry::gather_product`],
//! [`Geometry::product_scatter`]), their weight gradients summed by groups of images ([`Geometry::weight_grad`]).

use super::Real;
use super::gemm::{Op, matmul, n, t};
use super::linear::bias_grad;
use super::params::Registry;
use super::simd;
use super::threads::{self, Disjoint};

/// Height, width and channels of one image in NHWC layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Shape {
    /// Values per image.
    pub fn len(&self) -> usize {
        self.h * self.w * self.c
    }

    /// Whether the image holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Output side of a convolution: `⌊(n + 2p − k)/s⌋ + 1`, or `None` when the kernel does not fit.
pub fn conv_out(n: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    (n + 2 * p).checked_sub(k).map(|v| v / s + 1)
}

/// The window geometry shared by a convolution and its transpose: a `big` image (with its channels) seen
/// through `k×k` windows at stride `s` and padding `p`, one window per pixel of a `small_h×small_w` grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// The image the windows read from (convolution input, transposed-convolution output).
    pub big: Shape,
    /// Window rows.
    pub small_h: usize,
    /// Window columns.
    pub small_w: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride.
    pub s: usize,
    /// Zero padding on each side.
    pub p: usize,
}

impl Geometry {
    /// Windows per image.
    fn windows(&self) -> usize {
        self.small_h * self.small_w
    }

    /// Values per window: `k·k·channels`, ordered (row, column, channel).
    fn patch(&self) -> usize {
        self.k * self.k * self.big.c
    }

    /// For each window and kernel row/column, the big-image pixel it reads, if inside the image.
    #[cfg(test)]
    fn pixel(&self, oi: usize, oj: usize, di: usize, dj: usize) -> Option<usize> {
        let i = (oi * self.s + di).checked_sub(self.p)?;
        let j = (oj * self.s + dj).checked_sub(self.p)?;
        (i < self.big.h && j < self.big.w).then_some(i * self.big.w + j)
    }

    /// For window row `oi` and kernel row `di`, the big-image row read, if inside the image.
    fn row(&self, oi: usize, di: usize) -> Option<usize> {
        (oi * self.s + di)
            .checked_sub(self.p)
            .filter(|&i| i < self.big.h)
    }

    /// For window column `oj`: the kernel columns `lo..hi` that fall inside the image, and the big-image column
    /// of kernel column `lo` (meaningful only when `lo < hi`). With channels last, one kernel row's columns inside the image are one contiguous
    /// run of `(hi − lo)·c` values, which is why the gather and scatter below move whole runs.
    fn columns(&self, oj: usize) -> (usize, usize, usize) {
        let first = oj * self.s;
        let lo = self.p.saturating_sub(first).min(self.k);
        let hi = (self.big.w + self.p)
            .saturating_sub(first)
            .min(self.k)
            .max(lo);
        (lo, hi, (first + lo).saturating_sub(self.p))
    }

    /// Window columns `first..last` whose kernel columns all fall inside the image.
    fn inner_columns(&self) -> (usize, usize) {
        let first = self.p.div_ceil(self.s).min(self.small_w);
        let last = (self.big.w + self.p)
            .checked_sub(self.k)
            .map_or(0, |span| span / self.s + 1)
            .clamp(first, self.small_w.max(first));
        (first, last)
    }

    /// Whether every kernel row of window row `oi` falls inside the image.
    fn inner_row(&self, oi: usize) -> bool {
        oi * self.s >= self.p && oi * self.s + self.k <= self.big.h + self.p
    }

    /// Gathers the windows of `rows` images into `col[rows·windows, patch]`, zero outside the image.
    pub fn im2col<T: Real>(&self, img: &[T], col: &mut [T], rows: usize) {
        let (il, win, pl) = (self.big.len(), self.windows(), self.patch());
        let out = Disjoint::new(&mut col[..rows * win * pl]);
        threads::for_rows(rows, 1, |a, b| {
            simd::widest(
                #[inline(always)]
                || {
                    // SAFETY: image ranges a..b are disjoint between threads.
                    let col = unsafe { out.range(a * win * pl, b * win * pl) };
                    for (r, col) in (a..b).zip(col.chunks_exact_mut(win * pl)) {
                        self.gather_image(&img[r * il..(r + 1) * il], col);
                    }
                },
            )
        });
    }

    /// [`Geometry::im2col`] of one image, inside [`simd::widest`].
    #[inline(always)]
    fn gather_image<T: Real>(&self, img: &[T], col: &mut [T]) {
        // A kernel row of one or three channels is a run of a few values, which a known length copies in a few
        // moves instead of a loop.
        match self.k * self.big.c {
            3 => self.gather::<T, 3>(img, col),
            4 => self.gather::<T, 4>(img, col),
            9 => self.gather::<T, 9>(img, col),
            _ => self.gather::<T, 0>(img, col),
        }
    }

    /// [`Geometry::im2col`] of one image; `R` is the run `k·c` when known at compile time, else 0.
    #[inline(always)]
    fn gather<T: Real, const R: usize>(&self, img: &[T], col: &mut [T]) {
        let (pl, c, k, w) = (self.patch(), self.big.c, self.k, self.big.w);
        let run = if R == 0 { k * c } else { R };
        let (first, last) = self.inner_columns();
        for oi in 0..self.small_h {
            let inner_row = self.inner_row(oi);
            for oj in 0..self.small_w {
                let dst = &mut col[(oi * self.small_w + oj) * pl..][..pl];
                if inner_row && (first..last).contains(&oj) {
                    let start = ((oi * self.s - self.p) * w + oj * self.s - self.p) * c;
                    for (di, d) in dst.chunks_exact_mut(run).enumerate() {
                        copy_run(d, &img[start + di * w * c..][..run]);
                    }
                    continue;
                }
                let (lo, hi, j) = self.columns(oj);
                for (di, d) in dst.chunks_exact_mut(run).enumerate() {
                    let Some(i) = self.row(oi, di) else {
                        d.fill(T::zero());
                        continue;
                    };
                    d[..lo * c].fill(T::zero());
                    d[hi * c..].fill(T::zero());
                    if hi > lo {
                        let src = &img[(i * w + j) * c..][..(hi - lo) * c];
                        copy_run(&mut d[lo * c..hi * c], src);
                    }
                }
            }
        }
    }

    /// The adjoint of [`Geometry::im2col`]: sets `img` to the sum of each window's values at the pixels it covers.
    pub fn col2im<T: Real>(&self, col: &[T], img: &mut [T], rows: usize) {
        let (il, win, pl) = (self.big.len(), self.windows(), self.patch());
        let out = Disjoint::new(&mut img[..rows * il]);
        threads::for_rows(rows, 1, |a, b| {
            simd::widest(
                #[inline(always)]
                || {
                    // SAFETY: image ranges a..b are disjoint between threads.
                    let img = unsafe { out.range(a * il, b * il) };
                    img.fill(T::zero());
                    for (r, img) in (a..b).zip(img.chunks_exact_mut(il)) {
                        self.scatter_image(&col[r * win * pl..(r + 1) * win * pl], img);
                    }
                },
            )
        });
    }

    /// [`Geometry::col2im`] of one image into a zeroed `img`, inside [`simd::widest`].
    #[inline(always)]
    fn scatter_image<T: Real>(&self, col: &[T], img: &mut [T]) {
        match self.k * self.big.c {
            3 => self.scatter::<T, 3>(col, img),
            4 => self.scatter::<T, 4>(col, img),
            9 => self.scatter::<T, 9>(col, img),
            _ => self.scatter::<T, 0>(col, img),
        }
    }

    /// Whether images have windows enough for the products to go image by image, in cache.
    fn fused(&self) -> bool {
        self.windows() >= FUSED_WINDOWS
    }

    /// `out = im2col(img)·w` for `rows` images: `w` is `patch × outer` (as used) and `out` `rows·windows × outer`;
    /// `col` is scratch of [`Geometry::col_len`]`(rows)`, whose contents are lost.
    ///
    /// Where images have many windows, each thread gathers one image's columns at a time into the same scratch
    /// and multiplies them while they are in cache (an implicit GEMM): the batch's columns, 33 MB at dSprites'
    /// second layer, are never written to memory and read back. Each image's rows are one product of a fixed
    /// shape, whichever thread runs it, so results never depend on the threads.
    pub fn gather_product<T: Real>(
        &self,
        img: &[T],
        w: Op<'_, T>,
        outer: usize,
        out: &mut [T],
        rows: usize,
        col: &mut [T],
    ) {
        let (il, win, pl) = (self.big.len(), self.windows(), self.patch());
        let out = &mut out[..rows * win * outer];
        if !self.fused() {
            self.im2col(img, col, rows);
            let m = rows * win;
            matmul(out, n(&col[..m * pl]), w, m, outer, pl, false);
            return;
        }
        let out = Disjoint::new(out);
        self.each_image(rows, col, |r, cols| {
            let img = &img[r * il..(r + 1) * il];
            simd::widest(
                #[inline(always)]
                || self.gather_image(img, cols),
            );
            // SAFETY: `each_image` hands image r to one thread only.
            let out = unsafe { out.range(r * win * outer, (r + 1) * win * outer) };
            threads::serial(|| matmul(out, n(cols), w, win, outer, pl, false));
        });
    }

    /// `img = col2im(a·w)` for `rows` images: `a` is `rows·windows × inner` and `w` `inner × patch` (as used);
    /// `col` as in [`Geometry::gather_product`], which this mirrors: where images have many windows, each image's
    /// columns are multiplied into cache and scattered from there.
    pub fn product_scatter<T: Real>(
        &self,
        a: &[T],
        w: Op<'_, T>,
        inner: usize,
        img: &mut [T],
        rows: usize,
        col: &mut [T],
    ) {
        let (il, win, pl) = (self.big.len(), self.windows(), self.patch());
        if !self.fused() {
            let m = rows * win;
            matmul(
                &mut col[..m * pl],
                n(&a[..m * inner]),
                w,
                m,
                pl,
                inner,
                false,
            );
            self.col2im(col, img, rows);
            return;
        }
        let imgs = Disjoint::new(&mut img[..rows * il]);
        self.each_image(rows, col, |r, cols| {
            let a = &a[r * win * inner..(r + 1) * win * inner];
            threads::serial(|| matmul(cols, n(a), w, win, pl, inner, false));
            // SAFETY: `each_image` hands image r to one thread only.
            let img = unsafe { imgs.range(r * il, (r + 1) * il) };
            simd::widest(
                #[inline(always)]
                || {
                    img.fill(T::zero());
                    self.scatter_image(cols, img)
                },
            );
        });
    }

    /// Runs `f(r, cols)` for each of `rows` images, in contiguous ranges over the pool; `cols` is one image's
    /// columns of `col`, reused by every image of a thread's range so that they stay in cache.
    fn each_image<T: Real>(&self, rows: usize, col: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
        let one = self.windows() * self.patch();
        let scratch = Disjoint::new(&mut col[..rows * one]);
        threads::for_rows(rows, 1, |a, b| {
            // SAFETY: image ranges a..b are disjoint between threads; a thread's scratch is its first image's.
            let cols = unsafe { scratch.range(a * one, (a + 1) * one) };
            for r in a..b {
                f(r, &mut *cols);
            }
        });
    }

    /// [`Geometry::col2im`] of one image, adding each window in order; `R` as in [`Geometry::gather`].
    #[inline(always)]
    fn scatter<T: Real, const R: usize>(&self, col: &[T], img: &mut [T]) {
        let (pl, c, k, w) = (self.patch(), self.big.c, self.k, self.big.w);
        let run = if R == 0 { k * c } else { R };
        let (first, last) = self.inner_columns();
        for oi in 0..self.small_h {
            let inner_row = self.inner_row(oi);
            for oj in 0..self.small_w {
                let src = &col[(oi * self.small_w + oj) * pl..][..pl];
                if inner_row && (first..last).contains(&oj) {
                    let start = ((oi * self.s - self.p) * w + oj * self.s - self.p) * c;
                    for (di, s) in src.chunks_exact(run).enumerate() {
                        let dst = &mut img[start + di * w * c..][..run];
                        dst.iter_mut().zip(s).for_each(|(o, &v)| *o += v);
                    }
                    continue;
                }
                let (lo, hi, j) = self.columns(oj);
                for (di, s) in src.chunks_exact(run).enumerate() {
                    if let Some(i) = self.row(oi, di).filter(|_| hi > lo) {
                        let dst = &mut img[(i * w + j) * c..][..(hi - lo) * c];
                        for (o, &v) in dst.iter_mut().zip(&s[lo * c..hi * c]) {
                            *o += v;
                        }
                    }
                }
            }
        }
    }

    /// Writes `g = Σ aᵀ·im2col(img)` over `rows` images (adds it when `accumulate`): the weight gradient of a
    /// convolution (`a` its output gradient) or of a transposed one (`a` its input, `img` its output gradient).
    /// `a` holds `outer` values per window and `g` is `outer × patch`; `col` is scratch of
    /// [`Geometry::col_len`]`(rows)`, whose contents are lost. With `dx = Some((dx, w, inner))` it also writes
    /// `dx = im2col(img)·w` (`w` is `patch × inner` as used), the input gradient of a transposed convolution,
    /// from the same columns.
    ///
    /// Where images have many windows, the batch's columns (33 MB at dSprites' second layer) would be read from
    /// memory by a product that runs at half the speed of the others; instead each of a fixed number of groups of
    /// images gathers and multiplies one image at a time, in cache, into a sum of its own, and the groups' sums are
    /// added in order. The groups follow the batch size only, so the sums' order never depends on the threads.
    #[allow(clippy::too_many_arguments)]
    pub fn weight_grad<T: Real>(
        &self,
        img: &[T],
        a: &[T],
        outer: usize,
        g: &mut [T],
        accumulate: bool,
        rows: usize,
        col: &mut [T],
        dx: Option<(&mut [T], Op<'_, T>, usize)>,
    ) {
        let (il, win, pl) = (self.big.len(), self.windows(), self.patch());
        let groups = (rows / WEIGHT_GRAD_GROUP).max(1);
        // The fewest images of a group; each group keeps one image's columns and its sum in its images' scratch.
        let fewest = rows / groups;
        if !self.fused() || fewest < 2 || outer > (fewest - 1) * win {
            // Unless images go one by one, the input's gradient leaves the batch's columns in `col`.
            let gathered = match dx {
                Some((dx, w, inner)) => {
                    self.gather_product(img, w, inner, dx, rows, col);
                    !self.fused()
                }
                None => false,
            };
            if !gathered {
                self.im2col(img, col, rows);
            }
            let m = rows * win;
            matmul(
                &mut g[..outer * pl],
                t(&a[..m * outer]),
                n(&col[..m * pl]),
                outer,
                pl,
                m,
                accumulate,
            );
            return;
        }
        let bounds = |gi: usize| (gi * rows / groups, (gi + 1) * rows / groups);
        let scratch = Disjoint::new(&mut col[..rows * win * pl]);
        let dx = dx.map(|(dx, w, inner)| (Disjoint::new(&mut dx[..rows * win * inner]), w, inner));
        threads::for_rows(groups, 1, |ga, gb| {
            for gi in ga..gb {
                let (r0, r1) = bounds(gi);
                // SAFETY: group gi owns the scratch of its own images, r0..r1, which no other group touches.
                let own = unsafe { scratch.range(r0 * win * pl, r1 * win * pl) };
                let (cols, sum) = own.split_at_mut(win * pl);
                for r in r0..r1 {
                    let img = &img[r * il..(r + 1) * il];
                    simd::widest(
                        #[inline(always)]
                        || self.gather_image(img, cols),
                    );
                    if let Some((dx, w, inner)) = &dx {
                        // SAFETY: image r's rows of dx belong to this group, which no other thread runs.
                        let dx = unsafe { dx.range(r * win * inner, (r + 1) * win * inner) };
                        threads::serial(|| matmul(dx, n(cols), *w, win, *inner, pl, false));
                    }
                    let a = &a[r * win * outer..(r + 1) * win * outer];
                    let sum = &mut sum[..outer * pl];
                    threads::serial(|| matmul(sum, t(a), n(cols), outer, pl, win, r > r0));
                }
            }
        });
        let g = &mut g[..outer * pl];
        if !accumulate {
            g.fill(T::zero());
        }
        for gi in 0..groups {
            let start = bounds(gi).0 * win * pl + win * pl;
            let sum = &col[start..start + outer * pl];
            g.iter_mut().zip(sum).for_each(|(o, &v)| *o += v);
        }
    }

    /// Values of the im2col buffer for `rows` images.
    pub fn col_len(&self, rows: usize) -> usize {
        rows * self.windows() * self.patch()
    }
}

/// Images per group of [`Geometry::weight_grad`] (batch 64: 8 groups, 4 per thread on 2 cores).
const WEIGHT_GRAD_GROUP: usize = 8;
/// Windows an image needs for its products to go image by image: one image's weight gradient at dSprites' 16
/// windows (the fourth layer) ran 2–3 times slower than the batch's, at 256 windows faster; so did the forward and
/// input-gradient products at 256 and 1 024 windows (`examples/conv_cost.rs`).
const FUSED_WINDOWS: usize = 256;

/// Copies a short run element by element: most runs are one kernel row of a few channels (4 values for the
/// first layer of a 4×4 kernel on grey images), where a call to `memcpy` costs more than the copy.
#[inline]
fn copy_run<T: Copy>(dst: &mut [T], src: &[T]) {
    if dst.len() > 32 {
        dst.copy_from_slice(src);
    } else {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s;
        }
    }
}

/// A convolution with `out.c` filters of `k×k×input.c`; weight `[out.c, k, k, input.c]`, bias `[out.c]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    /// The window geometry (big = input).
    pub geo: Geometry,
    /// Output image shape.
    pub out: Shape,
    /// Offset of the weight.
    pub w: usize,
    /// Offset of the bias.
    pub b: usize,
}

impl Conv2d {
    /// Registers `name.weight` and `name.bias` for `input` → `channels` filters; `None` when the kernel does not
    /// fit the image.
    pub fn new(
        params: &mut impl Registry,
        name: &str,
        input: Shape,
        channels: usize,
        (k, s, p): (usize, usize, usize),
    ) -> Option<Self> {
        let out = Shape {
            h: conv_out(input.h, k, s, p)?,
            w: conv_out(input.w, k, s, p)?,
            c: channels,
        };
        let w = params.register(&format!("{name}.weight"), &[channels, k, k, input.c]);
        let b = params.register(&format!("{name}.bias"), &[channels]);
        let geo = Geometry {
            big: input,
            small_h: out.h,
            small_w: out.w,
            k,
            s,
            p,
        };
        Some(Conv2d { geo, out, w, b })
    }

    /// Inputs per weight row, for PyTorch's default initialisation bound.
    pub fn fan_in(&self) -> usize {
        self.geo.patch()
    }

    /// Weight length.
    pub fn weight_len(&self) -> usize {
        self.out.c * self.geo.patch()
    }

    /// The bias in `p`.
    pub fn bias<'a, T>(&self, p: &'a [T]) -> &'a [T] {
        &p[self.b..self.b + self.out.c]
    }

    /// `y = conv(x)` without the bias (added with the activation) for `rows` images; `col` is scratch.
    pub fn forward<T: Real>(&self, p: &[T], x: &[T], y: &mut [T], rows: usize, col: &mut [T]) {
        let wt = &p[self.w..self.w + self.weight_len()];
        self.geo.gather_product(x, t(wt), self.out.c, y, rows, col);
    }

    /// Writes the weight and bias gradients (adds them when `accumulate`) and, when asked, `dx`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Real>(
        &self,
        p: &[T],
        g: &mut [T],
        x: &[T],
        dy: &[T],
        dx: Option<&mut [T]>,
        rows: usize,
        col: &mut [T],
        accumulate: bool,
    ) {
        let (m, co) = (rows * self.geo.windows(), self.out.c);
        let wl = self.weight_len();
        let dy = &dy[..m * co];
        if let Some(dx) = dx {
            let wt = n(&p[self.w..self.w + wl]);
            self.geo.product_scatter(dy, wt, co, dx, rows, col);
        }
        let gw = &mut g[self.w..self.w + wl];
        self.geo
            .weight_grad(x, dy, co, gw, accumulate, rows, col, None);
        // On this thread, as before batch norm's sums were split: a part of 16 or 32 of a convolution's channels
        // reads half of each pair of cache lines the CPU fetches together, and the conv VAE looked slower so.
        threads::serial(|| bias_grad(&mut g[self.b..self.b + co], dy, accumulate));
    }
}

/// A transposed convolution (the adjoint of [`Conv2d`]'s input→output map) from `input.c` to `out.c` channels;
/// weight `[input.c, k, k, out.c]`, bias `[out.c]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose2d {
    /// The window geometry (big = output).
    pub geo: Geometry,
    /// Input image shape.
    pub input: Shape,
    /// Offset of the weight.
    pub w: usize,
    /// Offset of the bias.
    pub b: usize,
}

impl ConvTranspose2d {
    /// Registers `name.weight` and `name.bias` mapping `input` onto the image `out`; `None` unless a convolution
    /// with this kernel, stride and padding maps `out` back onto `input` (any output padding is implied by `out`).
    pub fn new(
        params: &mut impl Registry,
        name: &str,
        input: Shape,
        out: Shape,
        (k, s, p): (usize, usize, usize),
    ) -> Option<Self> {
        if conv_out(out.h, k, s, p)? != input.h || conv_out(out.w, k, s, p)? != input.w {
            return None;
        }
        let w = params.register(&format!("{name}.weight"), &[input.c, k, k, out.c]);
        let b = params.register(&format!("{name}.bias"), &[out.c]);
        let geo = Geometry {
            big: out,
            small_h: input.h,
            small_w: input.w,
            k,
            s,
            p,
        };
        Some(ConvTranspose2d { geo, input, w, b })
    }

    /// PyTorch's fan-in for `ConvTranspose2d` (its weight's dimension 1 times the kernel area).
    pub fn fan_in(&self) -> usize {
        self.geo.patch()
    }

    /// Weight length.
    pub fn weight_len(&self) -> usize {
        self.input.c * self.geo.patch()
    }

    /// The bias in `p`.
    pub fn bias<'a, T>(&self, p: &'a [T]) -> &'a [T] {
        &p[self.b..self.b + self.geo.big.c]
    }

    /// `y = convᵀ(x)` without the bias for `rows` images; `col` is scratch.
    pub fn forward<T: Real>(&self, p: &[T], x: &[T], y: &mut [T], rows: usize, col: &mut [T]) {
        let wt = &p[self.w..self.w + self.weight_len()];
        self.geo
            .product_scatter(x, n(wt), self.input.c, y, rows, col);
    }

    /// Writes the weight and bias gradients (adds them when `accumulate`) and, when asked, `dx`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Real>(
        &self,
        p: &[T],
        g: &mut [T],
        x: &[T],
        dy: &[T],
        dx: Option<&mut [T]>,
        rows: usize,
        col: &mut [T],
        accumulate: bool,
    ) {
        let ci = self.input.c;
        let wl = self.weight_len();
        // Both gradients read the columns of `dy`: they are gathered once for the two.
        let dx = dx.map(|dx| (dx, t(&p[self.w..self.w + wl]), ci));
        let gw = &mut g[self.w..self.w + wl];
        self.geo
            .weight_grad(dy, x, ci, gw, accumulate, rows, col, dx);
        let co = self.geo.big.c;
        let dy = &dy[..rows * self.geo.big.len()];
        // On this thread, as in `Conv2d::backward`.
        threads::serial(|| bias_grad(&mut g[self.b..self.b + co], dy, accumulate));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gradcheck::check_gradients;
    use crate::core::params::Params;
    use rand::{RngExt, SeedableRng};

    fn fill(v: &mut [f64], rng: &mut impl rand::Rng) {
        for x in v {
            *x = rng.random::<f64>() - 0.5;
        }
    }

    /// The run-wise gather and scatter equal the per-pixel definition, bit for bit, at geometries where windows
    /// hang over every edge (padding up to the kernel side, strides above the kernel) and at exact fits.
    #[test]
    fn gather_and_scatter_match_the_per_pixel_definition() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        for &(h, w, c, k, s, p) in &[
            (7, 5, 1, 3, 1, 0),
            (7, 5, 2, 3, 2, 1),
            (8, 8, 1, 4, 2, 1),
            (6, 9, 3, 4, 2, 3),
            (5, 5, 1, 2, 3, 0),
            (3, 4, 2, 5, 1, 2),
            (9, 6, 1, 1, 1, 0),
            (4, 4, 1, 2, 1, 3),
            (4, 5, 2, 3, 2, 4),
            // Runs of 3, 4 and 9 values take the fixed-length copies: the Keras example's first and last layers,
            // three-channel images.
            (28, 28, 1, 3, 2, 1),
            (28, 28, 1, 3, 1, 1),
            (10, 7, 3, 3, 2, 1),
            (6, 6, 3, 3, 1, 1),
            (9, 8, 2, 2, 2, 0),
            (2, 2, 3, 3, 1, 1),
        ] {
            let geo = Geometry {
                big: Shape { h, w, c },
                small_h: conv_out(h, k, s, p).unwrap(),
                small_w: conv_out(w, k, s, p).unwrap(),
                k,
                s,
                p,
            };
            let rows = 3;
            let mut img = vec![0.0; rows * geo.big.len()];
            fill(&mut img, &mut rng);
            let mut col = vec![f64::NAN; geo.col_len(rows)];
            geo.im2col(&img, &mut col, rows);
            let mut want_img = vec![0.0; img.len()];
            let (win, pl) = (geo.windows(), geo.patch());
            for r in 0..rows {
                for oi in 0..geo.small_h {
                    for oj in 0..geo.small_w {
                        for di in 0..k {
                            for dj in 0..k {
                                for ch in 0..c {
                                    let at = (r * win + oi * geo.small_w + oj) * pl
                                        + (di * k + dj) * c
                                        + ch;
                                    let want = geo.pixel(oi, oj, di, dj).map_or(0.0, |px| {
                                        want_img[r * geo.big.len() + px * c + ch] += col[at];
                                        img[r * geo.big.len() + px * c + ch]
                                    });
                                    assert_eq!(
                                        col[at].to_bits(),
                                        want.to_bits(),
                                        "{h}x{w}x{c} k{k} s{s} p{p}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
            let mut back = vec![f64::NAN; img.len()];
            geo.col2im(&col, &mut back, rows);
            assert_eq!(back, want_img, "{h}x{w}x{c} k{k} s{s} p{p}");
        }
    }

    /// Direct (loop) convolution, the definition the im2col version must agree with.
    fn direct(x: &[f64], wt: &[f64], c: &Conv2d, rows: usize) -> Vec<f64> {
        let (g, o) = (c.geo, c.out);
        let mut y = vec![0.0; rows * o.len()];
        for r in 0..rows {
            for oi in 0..o.h {
                for oj in 0..o.w {
                    for f in 0..o.c {
                        let mut acc = 0.0;
                        for di in 0..g.k {
                            for dj in 0..g.k {
                                let (i, j) = (oi * g.s + di, oj * g.s + dj);
                                if i < g.p || j < g.p || i - g.p >= g.big.h || j - g.p >= g.big.w {
                                    continue;
                                }
                                for ch in 0..g.big.c {
                                    let xv = x[r * g.big.len()
                                        + ((i - g.p) * g.big.w + (j - g.p)) * g.big.c
                                        + ch];
                                    acc += xv * wt[((f * g.k + di) * g.k + dj) * g.big.c + ch];
                                }
                            }
                        }
                        y[r * o.len() + (oi * o.w + oj) * o.c + f] = acc;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn conv_matches_the_direct_definition() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let mut params = Params::<f64>::default();
        let input = Shape { h: 7, w: 6, c: 2 };
        let conv = Conv2d::new(&mut params, "c", input, 3, (3, 2, 1)).unwrap();
        assert_eq!((conv.out.h, conv.out.w), (4, 3));
        fill(&mut params.data, &mut rng);
        let rows = 2;
        let mut x = vec![0.0; rows * input.len()];
        fill(&mut x, &mut rng);
        let mut y = vec![0.0; rows * conv.out.len()];
        let mut col = vec![0.0; conv.geo.col_len(rows)];
        conv.forward(&params.data, &x, &mut y, rows, &mut col);
        let want = direct(&x, &params.data[conv.w..], &conv, rows);
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn conv_gradients_match_finite_differences() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(4);
        let mut params = Params::<f64>::default();
        let input = Shape { h: 6, w: 5, c: 2 };
        let conv = Conv2d::new(&mut params, "c", input, 3, (3, 2, 1)).unwrap();
        fill(&mut params.data, &mut rng);
        let rows = 2;
        let mut x = vec![0.0; rows * input.len()];
        fill(&mut x, &mut rng);
        let mut r = vec![0.0; rows * conv.out.len()];
        fill(&mut r, &mut rng);
        let loss = |p: &[f64], x: &[f64]| {
            let mut y = vec![0.0; rows * conv.out.len()];
            let mut col = vec![0.0; conv.geo.col_len(rows)];
            conv.forward(p, x, &mut y, rows, &mut col);
            let b = conv.bias(p);
            y.iter()
                .enumerate()
                .map(|(i, v)| (v + b[i % 3]) * r[i])
                .sum::<f64>()
        };
        let mut dx = vec![0.0; x.len()];
        let mut col = vec![0.0; conv.geo.col_len(rows)];
        conv.backward(
            &params.data,
            &mut params.grad,
            &x,
            &r,
            Some(&mut dx),
            rows,
            &mut col,
            false,
        );
        check_gradients(&params.data, &params.grad, |p| loss(p, &x), "conv params");
        check_gradients(&x, &dx, |x| loss(&params.data, x), "conv input");
    }

    /// Images of 256 windows take [`Geometry::weight_grad`]'s way by groups: 17 images make two groups (8 and 9),
    /// 2 images one, and 1 image the whole batch's product; the forward and input-gradient products go image by
    /// image ([`Geometry::gather_product`], [`Geometry::product_scatter`]). The convolution equals its direct
    /// definition, the weight and input gradients of both layer kinds check in f64, and adding to a gradient adds
    /// exactly the gradient.
    #[test]
    fn weight_gradients_by_groups_of_images_check() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(6);
        let small = Shape { h: 16, w: 16, c: 3 };
        let big = Shape { h: 32, w: 32, c: 2 };
        for rows in [17, 2, 1] {
            let mut params = Params::<f64>::default();
            let conv = Conv2d::new(&mut params, "c", big, 3, (4, 2, 1)).unwrap();
            let deconv = ConvTranspose2d::new(&mut params, "d", small, big, (4, 2, 1)).unwrap();
            assert_eq!(conv.out, small);
            assert!(conv.geo.windows() >= FUSED_WINDOWS);
            fill(&mut params.data, &mut rng);
            let mut x = vec![0.0; rows * big.len()];
            fill(&mut x, &mut rng);
            let mut z = vec![0.0; rows * small.len()];
            fill(&mut z, &mut rng);
            let mut r = vec![0.0; rows * small.len()];
            fill(&mut r, &mut rng);
            let mut q = vec![0.0; rows * big.len()];
            fill(&mut q, &mut rng);
            let mut col = vec![0.0; conv.geo.col_len(rows)];
            let mut y = vec![0.0; rows * small.len()];
            conv.forward(&params.data, &x, &mut y, rows, &mut col);
            let want = direct(&x, &params.data[conv.w..], &conv, rows);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{rows} images: {a} vs {b}");
            }
            // Σ r·(conv(x) + b) + Σ q·(convᵀ(z) + b′).
            let loss = |p: &[f64], x: &[f64], z: &[f64]| {
                let mut col = vec![0.0; conv.geo.col_len(rows)];
                let mut y = vec![0.0; rows * small.len()];
                conv.forward(p, x, &mut y, rows, &mut col);
                let mut u = vec![0.0; rows * big.len()];
                deconv.forward(p, z, &mut u, rows, &mut col);
                let (b, b2) = (conv.bias(p), deconv.bias(p));
                let a: f64 = y
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v + b[i % 3]) * r[i])
                    .sum();
                a + u
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v + b2[i % 2]) * q[i])
                    .sum::<f64>()
            };
            let p = params.data.clone();
            let (mut dx, mut dz) = (vec![0.0; x.len()], vec![0.0; z.len()]);
            let (g, c) = (&mut params.grad, &mut col);
            conv.backward(&p, g, &x, &r, Some(&mut dx), rows, c, false);
            deconv.backward(&p, g, &z, &q, Some(&mut dz), rows, c, false);
            let what = format!("{rows} images");
            check_gradients(&p, &params.grad, |p| loss(p, &x, &z), &what);
            // Each image's input gradient is its own product: two images (one group) show its place, and the
            // check's cost grows with the images squared.
            if rows <= 2 {
                let (wx, wz) = (
                    format!("{what}, conv input"),
                    format!("{what}, convT input"),
                );
                check_gradients(&x, &dx, |x| loss(&p, x, &z), &wx);
                check_gradients(&z, &dz, |z| loss(&p, &x, z), &wz);
            }
            let once = params.grad.clone();
            conv.backward(&p, &mut params.grad, &x, &r, None, rows, &mut col, true);
            deconv.backward(
                &p,
                &mut params.grad,
                &z,
                &q,
                Some(&mut dz),
                rows,
                &mut col,
                true,
            );
            for (i, (a, b)) in params.grad.iter().zip(&once).enumerate() {
                assert!(
                    (a - 2.0 * b).abs() <= 1e-12 * b.abs().max(1.0),
                    "{rows} images, {i}: {a} {b}"
                );
            }
        }
    }

    #[test]
    fn transposed_conv_is_the_adjoint_and_its_gradients_check() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(5);
        let mut params = Params::<f64>::default();
        let small = Shape { h: 3, w: 3, c: 2 };
        let big = Shape { h: 6, w: 6, c: 3 };
        let ct = ConvTranspose2d::new(&mut params, "t", small, big, (3, 2, 1)).unwrap();
        fill(&mut params.data, &mut rng);
        let rows = 2;
        let mut x = vec![0.0; rows * small.len()];
        fill(&mut x, &mut rng);
        let mut r = vec![0.0; rows * big.len()];
        fill(&mut r, &mut rng);
        // ⟨convᵀ(x), r⟩ = ⟨x, conv(r)⟩ with the same weights read as a convolution from big to small.
        let mut y = vec![0.0; rows * big.len()];
        let mut col = vec![0.0; ct.geo.col_len(rows)];
        ct.forward(&params.data, &x, &mut y, rows, &mut col);
        let mut cp = Params::<f64>::default();
        let conv = Conv2d::new(&mut cp, "c", big, small.c, (3, 2, 1)).unwrap();
        cp.data[..ct.weight_len()].copy_from_slice(&params.data[ct.w..ct.w + ct.weight_len()]);
        let mut cy = vec![0.0; rows * small.len()];
        conv.forward(&cp.data, &r, &mut cy, rows, &mut col);
        let lhs: f64 = y.iter().zip(&r).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.iter().zip(&cy).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-10, "{lhs} vs {rhs}");

        let loss = |p: &[f64], x: &[f64]| {
            let mut y = vec![0.0; rows * big.len()];
            let mut col = vec![0.0; ct.geo.col_len(rows)];
            ct.forward(p, x, &mut y, rows, &mut col);
            let b = ct.bias(p);
            y.iter()
                .enumerate()
                .map(|(i, v)| (v + b[i % 3]) * r[i])
                .sum::<f64>()
        };
        let mut dx = vec![0.0; x.len()];
        ct.backward(
            &params.data,
            &mut params.grad,
            &x,
            &r,
            Some(&mut dx),
            rows,
            &mut col,
            false,
        );
        check_gradients(&params.data, &params.grad, |p| loss(p, &x), "convT params");
        check_gradients(&x, &dx, |x| loss(&params.data, x), "convT input");
    }

    #[test]
    fn output_sizes_follow_pytorch() {
        assert_eq!(conv_out(28, 3, 2, 1), Some(14));
        assert_eq!(conv_out(14, 3, 2, 1), Some(7));
        assert_eq!(conv_out(2, 5, 1, 0), None);
        let mut p = Params::<f32>::default();
        let s = |h, c| Shape { h, w: h, c };
        assert!(ConvTranspose2d::new(&mut p, "a", s(7, 64), s(14, 32), (3, 2, 1)).is_some());
        assert!(ConvTranspose2d::new(&mut p, "b", s(7, 64), s(20, 32), (3, 2, 1)).is_none());
    }
}
