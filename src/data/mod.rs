//! Data: one [`Dataset`] type (items of one shape, bytes or floats, optional labels and class names) and the
//! sources that produce it, each in its own file:
//!
//! - [`named`]: MNIST, Fashion-MNIST, KMNIST (IDX files) and CIFAR-10 (binary), downloaded and verified;
//! - [`images`]: folders of images and zip/tar archives of them, decoded, cropped and resized in parallel,
//!   with [`cache`] keeping the result;
//! - [`numpy`]: `.npy` and `.npz` arrays as items and labels, and DeepMind's dSprites layout ([`dsprites`], with
//!   its [`factors`]), both over the arrays [`npy`] reads;
//! - [`table`]: CSV and TSV tables, standardised with the training split's statistics;
//! - [`source`]: recognises which one a path is.
//!
//! Batching ([`batch`]) and everything downstream see only [`Dataset`].

pub mod batch;
pub mod bytes;
pub mod cache;
pub mod dataset;
pub mod download;
pub mod dsprites;
pub mod factors;
pub mod idx;
pub mod images;
pub mod named;
pub mod npy;
pub mod numpy;
pub mod source;
pub mod table;

pub use batch::{Batcher, Binarize};
pub use bytes::Bytes;
pub use dataset::{Dataset, ItemShape, Kind, Values};
pub use named::{DatasetName, load_dataset, resolve_data_dir};
pub use source::{DataSpec, Loaded};
pub use table::Standardizer;
