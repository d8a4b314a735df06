//! Data: IDX files, named datasets, downloading, and minibatches.

pub mod batch;
pub mod dataset;
pub mod download;
pub mod idx;

pub use batch::{Batcher, Binarize};
pub use dataset::{Dataset, DatasetName, load_dataset, resolve_data_dir};
