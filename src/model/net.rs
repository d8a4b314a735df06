//! A sequential network of dense, convolutional and transposed-convolutional layers, each optionally batch
//! normalised and followed by its activation, optionally conditioned on a class label.
//!
//! Activations are NHWC rows, so flattening and reshaping between layer kinds cost nothing. A class label
//! enters as a learned row added to one dense layer's pre-activation: exactly what concatenating a one-hot
//! vector to that layer's input does, without building the wider input.

use crate::core::batchnorm::BatchNorm;
use crate::core::conv::{Conv2d, ConvTranspose2d};
use crate::core::params::Registry;
use crate::core::sparse::{self, Nonzeros};
use crate::core::{Activation, Linear, Real, init};

/// One layer of a [`Net`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Fully connected.
    Dense(Linear),
    /// 2-D convolution.
    Conv(Conv2d),
    /// 2-D transposed convolution.
    Deconv(ConvTranspose2d),
}

impl Layer {
    /// Values per input row.
    pub fn in_len(&self) -> usize {
        match self {
            Layer::Dense(l) => l.fan_in,
            Layer::Conv(c) => c.geo.big.len(),
            Layer::Deconv(c) => c.input.len(),
        }
    }

    /// Values per output row.
    pub fn out_len(&self) -> usize {
        match self {
            Layer::Dense(l) => l.fan_out,
            Layer::Conv(c) => c.out.len(),
            Layer::Deconv(c) => c.geo.big.len(),
        }
    }

    /// Weights and biases of the layer.
    pub fn param_count(&self) -> usize {
        let (_, w, _, b, _) = self.init_spec();
        w + b
    }

    /// The layer's kind and output shape, for a model summary.
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            Layer::Dense(l) => ("Dense", format!("{}", l.fan_out)),
            Layer::Conv(c) => ("Conv2d", format!("{}x{}x{}", c.out.h, c.out.w, c.out.c)),
            Layer::Deconv(c) => (
                "ConvTranspose2d",
                format!("{}x{}x{}", c.geo.big.h, c.geo.big.w, c.geo.big.c),
            ),
        }
    }

    fn col_len(&self, rows: usize) -> usize {
        match self {
            Layer::Dense(_) => 0,
            Layer::Conv(c) => c.geo.col_len(rows),
            Layer::Deconv(c) => c.geo.col_len(rows),
        }
    }

    fn bias<'a, T>(&self, p: &'a [T]) -> &'a [T] {
        match self {
            Layer::Dense(l) => l.bias(p),
            Layer::Conv(c) => c.bias(p),
            Layer::Deconv(c) => c.bias(p),
        }
    }

    /// (weight offset, weight length, bias offset, bias length, fan-in) for initialisation.
    fn init_spec(&self) -> (usize, usize, usize, usize, usize) {
        match self {
            Layer::Dense(l) => (l.w, l.fan_in * l.fan_out, l.b, l.fan_out, l.fan_in),
            Layer::Conv(c) => (c.w, c.weight_len(), c.b, c.out.c, c.fan_in()),
            Layer::Deconv(c) => (c.w, c.weight_len(), c.b, c.geo.big.c, c.fan_in()),
        }
    }

    fn forward<T: Real>(&self, p: &[T], x: &[T], y: &mut [T], rows: usize, col: &mut [T]) {
        match self {
            Layer::Dense(l) => l.forward(p, x, y, rows),
            Layer::Conv(c) => c.forward(p, x, y, rows, col),
            Layer::Deconv(c) => c.forward(p, x, y, rows, col),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn backward<T: Real>(
        &self,
        p: &[T],
        g: &mut [T],
        x: &[T],
        dy: &[T],
        dx: Option<&mut [T]>,
        rows: usize,
        col: &mut [T],
    ) {
        match self {
            Layer::Dense(l) => l.backward(p, g, x, dy, dx, rows, false),
            Layer::Conv(c) => c.backward(p, g, x, dy, dx, rows, col, false),
            Layer::Deconv(c) => c.backward(p, g, x, dy, dx, rows, col, false),
        }
    }
}

/// A class-label table `[classes, width]` added to the pre-activation of layer `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    /// The dense layer it feeds.
    pub at: usize,
    /// Offset of the table.
    pub table: usize,
    /// Number of classes.
    pub classes: usize,
}

impl Cond {
    /// Registers `name` for `classes` labels feeding a layer of `width` outputs.
    pub fn new(
        reg: &mut impl Registry,
        name: &str,
        at: usize,
        classes: usize,
        width: usize,
    ) -> Self {
        let table = reg.register(name, &[classes, width]);
        Cond { at, table, classes }
    }
}

/// Layers applied in order: each layer, then its batch norm if any, then its activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Net {
    /// The layers.
    pub layers: Vec<Layer>,
    /// Activation after each layer (the last is usually the identity).
    pub acts: Vec<Activation>,
    /// Batch norm between each layer and its activation, if any.
    pub norms: Vec<Option<BatchNorm>>,
    /// Optional class conditioning.
    pub cond: Option<Cond>,
    /// Whether the first layer, dense and stored input-major, multiplies only the nonzero values of a sparse
    /// input ([`Net::multiply_sparse_inputs`]).
    sparse_input: bool,
}

/// Per-layer outputs and scratch for one batch size.
#[derive(Debug, Clone)]
pub struct NetBuffers<T> {
    outs: Vec<Vec<T>>,
    col: Vec<T>,
    ga: Vec<T>,
    gb: Vec<T>,
    /// Per batch-normed layer: its normalised values x̂, and the batch's per-channel mean and variance.
    xhat: Vec<Vec<T>>,
    stats: Vec<Vec<T>>,
    /// Rows of the last training-mode forward pass, whose statistics `stats` holds.
    trained_rows: usize,
    /// The input's nonzero values, and whether the last forward pass multiplied only those.
    nonzeros: Nonzeros<T>,
    sparse: bool,
}

impl<T> NetBuffers<T> {
    /// The last layer's output; backward reads the gradient of the loss w.r.t. it from the same place.
    pub fn output(&self) -> &[T] {
        self.outs.last().map_or(&[], |v| &v[..])
    }

    /// Mutable access to the last layer's output, to overwrite it with its gradient before backward.
    pub fn output_mut(&mut self) -> &mut [T] {
        self.outs.last_mut().map_or(&mut [], |v| &mut v[..])
    }
}

impl Net {
    /// A net with `act` after every layer but the last, which stays linear, and no batch norm.
    pub fn plain(layers: Vec<Layer>, act: Activation, cond: Option<Cond>) -> Self {
        let n = layers.len();
        let acts = (0..n)
            .map(|i| {
                if i + 1 == n {
                    Activation::Identity
                } else {
                    act
                }
            })
            .collect();
        Net {
            layers,
            acts,
            norms: vec![None; n],
            cond,
            sparse_input: false,
        }
    }

    /// Values per input row.
    pub fn in_len(&self) -> usize {
        self.layers.first().map_or(0, Layer::in_len)
    }

    /// Values per output row.
    pub fn out_len(&self) -> usize {
        self.layers.last().map_or(0, Layer::out_len)
    }

    /// Buffers for batches of up to `rows` rows.
    pub fn buffers<T: Real>(&self, rows: usize) -> NetBuffers<T> {
        let widest = self
            .layers
            .iter()
            .map(|l| l.in_len().max(l.out_len()))
            .max()
            .unwrap_or(0);
        let col = self
            .layers
            .iter()
            .map(|l| l.col_len(rows))
            .max()
            .unwrap_or(0);
        NetBuffers {
            outs: self
                .layers
                .iter()
                .map(|l| vec![T::zero(); rows * l.out_len()])
                .collect(),
            col: vec![T::zero(); col],
            ga: vec![T::zero(); rows * widest],
            gb: vec![T::zero(); rows * widest],
            xhat: self
                .layers
                .iter()
                .zip(&self.norms)
                .map(|(l, n)| vec![T::zero(); if n.is_some() { rows * l.out_len() } else { 0 }])
                .collect(),
            stats: self
                .norms
                .iter()
                .map(|n| vec![T::zero(); n.map_or(0, |b| b.stats_len())])
                .collect(),
            trained_rows: 0,
            nonzeros: Nonzeros::default(),
            sparse: false,
        }
    }

    /// Scalars [`Net::buffers`] allocates for `rows` rows, to refuse impossible sizes before allocating.
    pub fn buffer_len(&self, rows: usize) -> u128 {
        let r = rows as u128;
        let outs: u128 = self.layers.iter().map(|l| l.out_len() as u128).sum();
        let widest = self
            .layers
            .iter()
            .map(|l| l.in_len().max(l.out_len()))
            .max()
            .unwrap_or(0) as u128;
        let col = self.layers.iter().map(|l| l.col_len(1)).max().unwrap_or(0) as u128;
        let normed: u128 = self
            .layers
            .iter()
            .zip(&self.norms)
            .filter(|(_, n)| n.is_some())
            .map(|(l, _)| l.out_len() as u128)
            .sum();
        r * (outs + 2 * widest + col + normed)
    }

    /// PyTorch's default initialisation of every layer; a conditioned layer counts the one-hot inputs in its
    /// fan-in, as `nn.Linear` over the concatenation would.
    pub fn init<T: Real>(&self, p: &mut [T], rng: &mut impl rand::Rng) {
        for bn in self.norms.iter().flatten() {
            bn.init(p);
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let (w, wl, b, bl, mut fan_in) = layer.init_spec();
            let cond = self.cond.filter(|c| c.at == i);
            if let Some(c) = cond {
                fan_in += c.classes;
            }
            let bound = 1.0 / (fan_in as f64).sqrt();
            init::uniform(&mut p[w..w + wl], bound, rng);
            init::uniform(&mut p[b..b + bl], bound, rng);
            if let Some(c) = cond {
                init::uniform(
                    &mut p[c.table..c.table + c.classes * layer.out_len()],
                    bound,
                    rng,
                );
            }
        }
    }

    /// Stores the first layer's weight input-major (`moments` follow it) and from then on multiplies only the
    /// nonzero values of an input sparse enough for it to pay ([`sparse`]), or undoes that when `on` is false.
    /// MNIST's pixels are 81 % zeros. Returns whether the first layer is dense, the only kind this serves.
    pub(crate) fn multiply_sparse_inputs<T: Copy>(
        &mut self,
        on: bool,
        p: &mut [T],
        moments: &mut [&mut [T]],
    ) -> bool {
        let Some(Layer::Dense(l)) = self.layers.first_mut() else {
            return false;
        };
        l.set_layout(on, p, moments);
        self.sparse_input = on;
        true
    }

    /// Stores every dense weight input-major, for a copy that only runs forward.
    pub(crate) fn store_for_inference<T: Copy>(&mut self, p: &mut [T]) {
        for layer in &mut self.layers {
            if let Layer::Dense(l) = layer {
                l.store_for_inference(p);
            }
        }
    }

    /// Runs all layers on `rows` rows of `x` (labels per row when conditioned); the result is
    /// [`NetBuffers::output`]. `training` normalises by the batch's statistics (and keeps what backward
    /// needs), otherwise by the running ones.
    pub fn forward<T: Real>(
        &self,
        p: &[T],
        x: &[T],
        labels: &[u32],
        rows: usize,
        buf: &mut NetBuffers<T>,
        training: bool,
    ) {
        if training {
            buf.trained_rows = rows;
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let (before, rest) = buf.outs.split_at_mut(i);
            let input = if i == 0 { x } else { &before[i - 1][..] };
            let ol = layer.out_len();
            let y = &mut rest[0][..rows * ol];
            let input = &input[..rows * layer.in_len()];
            if i == 0 {
                buf.sparse = false;
            }
            match layer {
                Layer::Dense(l)
                    if i == 0
                        && self.sparse_input
                        && buf.nonzeros.of(
                            input,
                            rows,
                            l.fan_in,
                            sparse::most_nonzeros(input.len()),
                        ) =>
                {
                    l.forward_sparse(p, &buf.nonzeros, y);
                    buf.sparse = true;
                }
                _ => layer.forward(p, input, y, rows, &mut buf.col),
            }
            if let Some(c) = self.cond.filter(|c| c.at == i) {
                for (row, &label) in y.chunks_exact_mut(ol).zip(&labels[..rows]) {
                    let t = &p[c.table + label as usize * ol..][..ol];
                    row.iter_mut().zip(t).for_each(|(v, &a)| *v += a);
                }
            }
            let act = self.acts[i];
            match self.norms[i] {
                None => act.forward_bias(y, layer.bias(p)),
                Some(bn) => {
                    Activation::Identity.forward_bias(y, layer.bias(p));
                    // The ReLU family is applied by batch norm's last pass; other activations by a pass of their own.
                    let fused = act.piecewise();
                    if training {
                        let xhat = &mut buf.xhat[i][..rows * ol];
                        bn.forward_train(p, y, xhat, &mut buf.stats[i], fused);
                    } else {
                        bn.forward_eval(p, y, fused);
                    }
                    if fused.is_none() {
                        act.forward_bias(y, bn.beta(p));
                    }
                }
            }
        }
    }

    /// Folds the batch statistics of the last training-mode [`Net::forward`] into the running statistics.
    pub fn update_running_stats<T: Real>(&self, p: &mut [T], buf: &NetBuffers<T>) {
        for (i, (layer, bn)) in self.layers.iter().zip(&self.norms).enumerate() {
            if let Some(bn) = bn {
                let per_row = layer.out_len() / bn.channels.max(1);
                bn.update_running(p, &buf.stats[i], buf.trained_rows * per_row);
            }
        }
    }

    /// Backpropagates the gradient left in [`NetBuffers::output_mut`] after [`Net::forward`] on the same rows,
    /// writing every parameter gradient into `g` and, when asked, the input gradient into `dx`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Real>(
        &self,
        p: &[T],
        g: &mut [T],
        x: &[T],
        labels: &[u32],
        rows: usize,
        buf: &mut NetBuffers<T>,
        mut dx: Option<&mut [T]>,
    ) {
        enum Cur {
            Top,
            A,
            B,
        }
        let l = self.layers.len();
        let NetBuffers {
            outs,
            col,
            ga,
            gb,
            xhat,
            stats,
            nonzeros,
            sparse,
            ..
        } = buf;
        let (lower, top) = outs.split_at_mut(l - 1);
        let top = &mut top[0];
        let mut cur = Cur::Top;
        for i in (0..l).rev() {
            let layer = &self.layers[i];
            let (ol, il) = (layer.out_len(), layer.in_len());
            let (dy, spare, next) = match cur {
                Cur::Top => (&mut top[..], &mut ga[..], Cur::A),
                Cur::A => (&mut ga[..], &mut gb[..], Cur::B),
                Cur::B => (&mut gb[..], &mut ga[..], Cur::A),
            };
            let dy = &mut dy[..rows * ol];
            // The last layer's gradient arrives in place of its output, so it must stay linear (as built).
            debug_assert!(i + 1 < l || self.acts[i] == Activation::Identity);
            // Batch norm takes the ReLU family's derivative itself, from x̂ (see forward).
            let fused = self.norms[i].and(self.acts[i].piecewise());
            if i + 1 < l && fused.is_none() {
                self.acts[i].backward(&lower[i][..rows * ol], dy);
            }
            if let Some(bn) = self.norms[i] {
                bn.backward(p, g, &xhat[i][..rows * ol], &stats[i], dy, fused);
            }
            if let Some(c) = self.cond.filter(|c| c.at == i) {
                let t = &mut g[c.table..c.table + c.classes * ol];
                t.fill(T::zero());
                for (row, &label) in dy.chunks_exact(ol).zip(&labels[..rows]) {
                    let t = &mut t[label as usize * ol..][..ol];
                    t.iter_mut().zip(row).for_each(|(a, &d)| *a += d);
                }
            }
            let input = if i == 0 { x } else { &lower[i - 1][..] };
            let dxi = if i == 0 {
                dx.as_deref_mut().map(|d| &mut d[..rows * il])
            } else {
                Some(&mut spare[..rows * il])
            };
            match layer {
                Layer::Dense(l) if i == 0 && *sparse => {
                    l.backward_sparse(p, g, nonzeros, dy, dxi, rows);
                }
                _ => layer.backward(p, g, &input[..rows * il], dy, dxi, rows, col),
            }
            cur = next;
        }
    }
}
