//! All of a model's parameters in one flat buffer, with a gradient buffer beside it and named views.

use super::Real;

/// Name, shape and place of one tensor inside the flat buffers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TensorSpec {
    /// Name as stored in checkpoints, e.g. `encoder.0.weight`.
    pub name: String,
    /// Shape, row-major (PyTorch's layout: a weight is `[out, in]`).
    pub shape: Vec<usize>,
    /// Start of the tensor in the flat buffers.
    pub offset: usize,
    /// A buffer (batch norm's running statistics): saved with the weights, never trained or decayed.
    #[serde(default)]
    pub buffer: bool,
}

impl TensorSpec {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index range in the flat buffers.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Something tensors can be registered with: [`Params`] allocates them, [`Counter`] only counts.
pub trait Registry {
    /// Registers a tensor and returns its offset.
    fn register(&mut self, name: &str, shape: &[usize]) -> usize;
    /// Registers a tensor that is state rather than a weight (no gradient) and returns its offset.
    fn register_buffer(&mut self, name: &str, shape: &[usize]) -> usize {
        self.register(name, shape)
    }
}

impl<T: Real> Registry for Params<T> {
    fn register(&mut self, name: &str, shape: &[usize]) -> usize {
        self.add(name, shape)
    }
    fn register_buffer(&mut self, name: &str, shape: &[usize]) -> usize {
        let offset = self.add(name, shape);
        if let Some(s) = self.specs.last_mut() {
            s.buffer = true;
        }
        offset
    }
}

/// Counts the scalars a model would have, without allocating, so absurd configs are refused first.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counter {
    /// Scalars so far (no overflow for any config).
    pub total: u128,
    /// Of which buffers.
    pub buffers: u128,
}

impl Registry for Counter {
    fn register(&mut self, _name: &str, shape: &[usize]) -> usize {
        let offset = self.total.min(usize::MAX as u128) as usize;
        self.total += shape.iter().map(|&d| d as u128).product::<u128>();
        offset
    }
    fn register_buffer(&mut self, name: &str, shape: &[usize]) -> usize {
        self.buffers += shape.iter().map(|&d| d as u128).product::<u128>();
        self.register(name, shape)
    }
}

/// Flat parameter and gradient buffers; one optimiser loop covers every tensor.
#[derive(Debug, Clone)]
pub struct Params<T> {
    /// The parameter values.
    pub data: Vec<T>,
    /// The gradients, same layout as `data`.
    pub grad: Vec<T>,
    /// The named tensors, in registration order.
    pub specs: Vec<TensorSpec>,
}

impl<T: Real> Default for Params<T> {
    fn default() -> Self {
        Params {
            data: Vec::new(),
            grad: Vec::new(),
            specs: Vec::new(),
        }
    }
}

impl<T: Real> Params<T> {
    /// Registers a zero-filled tensor and returns its offset.
    pub fn add(&mut self, name: &str, shape: &[usize]) -> usize {
        let offset = self.data.len();
        let spec = TensorSpec {
            name: name.to_string(),
            shape: shape.to_vec(),
            offset,
            buffer: false,
        };
        self.data.resize(offset + spec.len(), T::zero());
        self.grad.resize(offset + spec.len(), T::zero());
        self.specs.push(spec);
        offset
    }

    /// The tensor named `name`.
    pub fn spec(&self, name: &str) -> Option<&TensorSpec> {
        self.specs.iter().find(|s| s.name == name)
    }

    /// Sets every gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad.fill(T::zero());
    }

    /// Number of trained scalars (buffers excluded), as PyTorch counts parameters.
    pub fn trained_len(&self) -> usize {
        self.specs
            .iter()
            .filter(|s| !s.buffer)
            .map(TensorSpec::len)
            .sum()
    }

    /// Number of scalars, buffers included.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Converts to another float type (f32 weights into an f64 model for checks, and back).
    pub fn cast<U: Real>(&self) -> Params<U> {
        Params {
            data: self.data.iter().map(|&v| U::c(v.f64())).collect(),
            grad: self.grad.iter().map(|&v| U::c(v.f64())).collect(),
            specs: self.specs.clone(),
        }
    }
}
