//! A sequential network of dense, convolutional and transposed-convolutional layers with one hidden
//! activation, optionally conditioned on a class label.
//!
//! Activations are NHWC rows, so flattening and reshaping between layer kinds cost nothing. A class label
//! enters as a learned row added to one dense layer's pre-activation: exactly what concatenating a one-hot
//! vector to that layer's input does, without building the wider input.

use crate::core::conv::{Conv2d, ConvTranspose2d};
use crate::core::params::Registry;
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

/// Layers applied in order, the hidden activation after each but the last (which stays linear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Net {
    /// The layers.
    pub layers: Vec<Layer>,
    /// Activation after every layer but the last.
    pub act: Activation,
    /// Optional class conditioning.
    pub cond: Option<Cond>,
}

/// Per-layer outputs and scratch for one batch size.
#[derive(Debug, Clone)]
pub struct NetBuffers<T> {
    outs: Vec<Vec<T>>,
    col: Vec<T>,
    ga: Vec<T>,
    gb: Vec<T>,
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
        r * (outs + 2 * widest + col)
    }

    /// PyTorch's default initialisation of every layer; a conditioned layer counts the one-hot inputs in its
    /// fan-in, as `nn.Linear` over the concatenation would.
    pub fn init<T: Real>(&self, p: &mut [T], rng: &mut impl rand::Rng) {
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

    /// Runs all layers on `rows` rows of `x` (labels per row when conditioned); the result is
    /// [`NetBuffers::output`].
    pub fn forward<T: Real>(
        &self,
        p: &[T],
        x: &[T],
        labels: &[u32],
        rows: usize,
        buf: &mut NetBuffers<T>,
    ) {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let (before, rest) = buf.outs.split_at_mut(i);
            let input = if i == 0 { x } else { &before[i - 1][..] };
            let ol = layer.out_len();
            let y = &mut rest[0][..rows * ol];
            layer.forward(p, &input[..rows * layer.in_len()], y, rows, &mut buf.col);
            if let Some(c) = self.cond.filter(|c| c.at == i) {
                for (row, &label) in y.chunks_exact_mut(ol).zip(&labels[..rows]) {
                    let t = &p[c.table + label as usize * ol..][..ol];
                    row.iter_mut().zip(t).for_each(|(v, &a)| *v += a);
                }
            }
            let act = if i == last {
                Activation::Identity
            } else {
                self.act
            };
            act.forward_bias(y, layer.bias(p));
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
        let NetBuffers { outs, col, ga, gb } = buf;
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
            if i + 1 < l {
                self.act.backward(&lower[i][..rows * ol], dy);
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
            layer.backward(p, g, &input[..rows * il], dy, dxi, rows, col);
            cur = next;
        }
    }
}
