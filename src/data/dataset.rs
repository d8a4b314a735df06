//! Named MNIST-like datasets: where their files are, and loading them into memory.

use super::download::{self, RemoteFile};
use super::idx::read_idx;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The datasets elbo knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// LeCun et al.'s handwritten digits.
    Mnist,
    /// Zalando's clothing images.
    FashionMnist,
    /// Kuzushiji (cursive Japanese) characters.
    Kmnist,
}

impl std::str::FromStr for DatasetName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetName::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" => Ok(DatasetName::FashionMnist),
            "kmnist" => Ok(DatasetName::Kmnist),
            _ => Err(Error::UnknownDataset(s.to_string())),
        }
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four files of an MNIST-like dataset, in the order train images, train labels, test images, test labels.
pub const FILE_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

impl DatasetName {
    /// The name used on the command line and in folder names.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Kmnist => "kmnist",
        }
    }

    /// The public mirrors, tried in order; all HTTPS.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            DatasetName::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
            ],
            DatasetName::FashionMnist => &[
                "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ],
            DatasetName::Kmnist => &["https://codh.rois.ac.jp/kmnist/dataset/kmnist/"],
        }
    }

    /// The published md5 sums of the four `.gz` files, in [`FILE_NAMES`] order.
    pub fn md5s(self) -> [&'static str; 4] {
        match self {
            DatasetName::Mnist => [
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "d53e105ee54ea40749a09fcbcd1e9432",
                "9fb629c4189551a2d022fa330f9573f3",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ],
            DatasetName::FashionMnist => [
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940ec79",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ],
            DatasetName::Kmnist => [
                "bdb82020997e1d708af4cf47b453dcf7",
                "e144d726b3acfaa3e44228e80efcd344",
                "5c965bf0a639b31b8f53240b1b52f4d7",
                "7320c461ea6c1c855c0b718fb2a4b134",
            ],
        }
    }

    /// The files to fetch, with their checksums.
    pub fn remote_files(self) -> Vec<RemoteFile> {
        FILE_NAMES
            .iter()
            .zip(self.md5s())
            .map(|(name, md5)| RemoteFile {
                name: name.to_string(),
                md5: md5.to_string(),
            })
            .collect()
    }
}

/// Images (bytes, row-major) and labels of one split.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Pixels as stored, 0..=255, `len * rows * cols` of them.
    pub images: Vec<u8>,
    /// One class label per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image.
    pub fn dim(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let d = self.dim();
        &self.images[i * d..(i + 1) * d]
    }

    /// The first `n` images (all if there are fewer).
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.images.truncate(n * self.dim());
        self.labels.truncate(n);
        self
    }

    /// Splits off the last `n` images as a second dataset.
    pub fn split_off(&mut self, n: usize) -> Dataset {
        let keep = self.len().saturating_sub(n);
        Dataset {
            images: self.images.split_off(keep * self.dim()),
            labels: self.labels.split_off(keep),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// Loads images and labels from two IDX files, checking that they agree.
    pub fn from_idx_files(images: &Path, labels: &Path) -> Result<Dataset> {
        let im = read_idx(images)?;
        let lb = read_idx(labels)?;
        if im.dims.len() != 3 {
            return Err(Error::Idx {
                path: images.to_path_buf(),
                reason: format!(
                    "expected 3 dimensions (items, rows, cols), found {:?}",
                    im.dims
                ),
            });
        }
        if lb.dims.len() != 1 {
            return Err(Error::Idx {
                path: labels.to_path_buf(),
                reason: format!("expected 1 dimension for labels, found {:?}", lb.dims),
            });
        }
        if im.len() != lb.len() {
            return Err(Error::Idx {
                path: labels.to_path_buf(),
                reason: format!(
                    "{} labels for {} images in {}",
                    lb.len(),
                    im.len(),
                    images.display()
                ),
            });
        }
        Ok(Dataset {
            rows: im.dims[1],
            cols: im.dims[2],
            images: im.data,
            labels: lb.data,
        })
    }
}

/// Where a dataset's files live: `--data-dir`, else `$ELBO_DATA_DIR`, else the user's cache folder.
pub fn resolve_data_dir(name: DatasetName, explicit: Option<&Path>) -> PathBuf {
    if let Some(d) = explicit {
        return d.to_path_buf();
    }
    if let Some(d) = std::env::var_os("ELBO_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    dirs::cache_dir()
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("elbo")
        .join(name.as_str())
}

/// Finds `name` (or its uncompressed form) in `dir`.
fn existing(dir: &Path, name: &str) -> Option<PathBuf> {
    let gz = dir.join(name);
    if gz.is_file() {
        return Some(gz);
    }
    let raw = dir.join(name.trim_end_matches(".gz"));
    raw.is_file().then_some(raw)
}

/// Loads the train and test splits of a dataset from `dir`, downloading missing files first.
pub fn load_dataset(name: DatasetName, dir: &Path) -> Result<(Dataset, Dataset)> {
    let missing: Vec<RemoteFile> = name
        .remote_files()
        .into_iter()
        .filter(|f| existing(dir, &f.name).is_none())
        .collect();
    if !missing.is_empty() {
        let mirrors = download::mirrors_for(name);
        download::fetch_all(&missing, dir, &mirrors)?;
    }
    let path = |i: usize| existing(dir, FILE_NAMES[i]).expect("file present after download");
    let train = Dataset::from_idx_files(&path(0), &path(1))?;
    let test = Dataset::from_idx_files(&path(2), &path(3))?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(Error::Idx {
            path: path(2),
            reason: format!(
                "test images are {}x{} but training images are {}x{}",
                test.rows, test.cols, train.rows, train.cols
            ),
        });
    }
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::encode_idx;

    fn write(dir: &Path, name: &str, dims: &[usize], data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, encode_idx(dims, data)).unwrap();
        p
    }

    #[test]
    fn images_and_labels_must_agree() {
        let tmp = tempfile::tempdir().unwrap();
        let im = write(tmp.path(), "im", &[3, 2, 2], &[0; 12]);
        let lb = write(tmp.path(), "lb", &[2], &[1, 2]);
        let err = Dataset::from_idx_files(&im, &lb).unwrap_err().to_string();
        assert!(err.contains("2 labels for 3 images"), "{err}");
        let err = Dataset::from_idx_files(&lb, &lb).unwrap_err().to_string();
        assert!(err.contains("expected 3 dimensions"), "{err}");
        let lb3 = write(tmp.path(), "lb3", &[3], &[1, 2, 3]);
        let ds = Dataset::from_idx_files(&im, &lb3).unwrap();
        assert_eq!((ds.len(), ds.dim()), (3, 4));
    }

    #[test]
    fn names_parse_and_unknown_ones_are_refused() {
        assert_eq!(
            "Fashion-MNIST".parse::<DatasetName>().unwrap(),
            DatasetName::FashionMnist
        );
        assert_eq!(
            "kmnist".parse::<DatasetName>().unwrap(),
            DatasetName::Kmnist
        );
        assert!(
            "cifar"
                .parse::<DatasetName>()
                .unwrap_err()
                .to_string()
                .contains("unknown dataset 'cifar'")
        );
        for name in [
            DatasetName::Mnist,
            DatasetName::FashionMnist,
            DatasetName::Kmnist,
        ] {
            assert!(name.mirrors().iter().all(|m| m.starts_with("https://")));
            assert_eq!(name.remote_files().len(), 4);
        }
    }
}
