//! The datasets elbo knows by name: where their files are, downloading them, and loading them.

use super::dataset::{Dataset, ItemShape};
use super::download::{self, RemoteFile};
use super::idx::read_idx;
use crate::error::{Error, Result};
use std::io::Read;
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
    /// Krizhevsky's 32×32 colour images in 10 classes (the binary version).
    Cifar10,
    /// DeepMind's 737 280 binary 64×64 sprites with their six factors (see [`super::dsprites`]).
    Dsprites,
}

impl std::str::FromStr for DatasetName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetName::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" => Ok(DatasetName::FashionMnist),
            "kmnist" => Ok(DatasetName::Kmnist),
            "cifar10" | "cifar-10" => Ok(DatasetName::Cifar10),
            "dsprites" => Ok(DatasetName::Dsprites),
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

/// The one file of CIFAR-10's binary version.
pub const CIFAR10_FILE: &str = "cifar-10-binary.tar.gz";
/// Its published md5.
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";

impl DatasetName {
    /// The name used on the command line and in folder names.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Kmnist => "kmnist",
            DatasetName::Cifar10 => "cifar10",
            DatasetName::Dsprites => "dsprites",
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
            DatasetName::Cifar10 => &["https://www.cs.toronto.edu/~kriz/"],
            DatasetName::Dsprites => &[super::dsprites::MIRROR],
        }
    }

    /// The files to fetch, with their published md5 sums.
    pub fn remote_files(self) -> Vec<RemoteFile> {
        let md5s = match self {
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
            DatasetName::Cifar10 => {
                return vec![RemoteFile {
                    name: CIFAR10_FILE.into(),
                    md5: CIFAR10_MD5.into(),
                }];
            }
            DatasetName::Dsprites => {
                return vec![RemoteFile {
                    name: super::dsprites::FILE.into(),
                    md5: super::dsprites::MD5.into(),
                }];
            }
        };
        FILE_NAMES
            .iter()
            .zip(md5s)
            .map(|(name, md5)| RemoteFile {
                name: name.to_string(),
                md5: md5.to_string(),
            })
            .collect()
    }

    /// The names of the classes, indexed by label (none for dSprites, which has factors instead).
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            DatasetName::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetName::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
            DatasetName::Kmnist => &["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
            DatasetName::Dsprites => &[],
            DatasetName::Cifar10 => &[
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ],
        }
    }
}

/// Loads images and labels from two IDX files, checking that they agree.
pub fn from_idx_files(images: &Path, labels: &Path) -> Result<Dataset> {
    let im = read_idx(images)?;
    let lb = read_idx(labels)?;
    let bad = |path: &Path, reason: String| Error::Idx {
        path: path.to_path_buf(),
        reason,
    };
    if im.dims.len() != 3 {
        return Err(bad(
            images,
            format!(
                "expected 3 dimensions (items, rows, cols), found {:?}",
                im.dims
            ),
        ));
    }
    if lb.dims.len() != 1 {
        return Err(bad(
            labels,
            format!("expected 1 dimension for labels, found {:?}", lb.dims),
        ));
    }
    if im.len() != lb.len() {
        return Err(bad(
            labels,
            format!(
                "{} labels for {} images in {}",
                lb.len(),
                im.len(),
                images.display()
            ),
        ));
    }
    Dataset::from_bytes(
        ItemShape::grey(im.dims[1], im.dims[2]),
        im.data,
        Some(lb.data.iter().map(|&l| l as u32).collect()),
    )
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

/// Finds `name` (or its uncompressed form, for IDX files) in `dir`; something there that is not a regular file
/// is an error, never a reason to download over it.
fn existing(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    let mut candidates = vec![dir.join(name)];
    if name.ends_with("ubyte.gz") {
        candidates.push(dir.join(name.trim_end_matches(".gz")));
    }
    for p in candidates {
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => return Ok(Some(p)),
            Ok(_) => {
                return Err(Error::Config(format!(
                    "{}: not a regular file (a folder, FIFO or device?); move it away so the dataset file can be read or downloaded",
                    p.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A dangling symbolic link is as good as missing, but a loop is named.
                if std::fs::symlink_metadata(&p).is_ok() {
                    return Err(Error::Config(format!(
                        "{}: a symbolic link that leads nowhere; fix or remove it",
                        p.display()
                    )));
                }
            }
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Ok(None)
}

/// The md5 of each IDX file's decompressed bytes, in [`FILE_NAMES`]' order, where the dataset's publishers or
/// torchvision list them: a copy recompressed by a packager (Debian's `dataset-fashion-mnist`) differs only in
/// its gzip wrapper, and is checked by its content instead.
fn content_md5s(name: DatasetName) -> Option<[&'static str; 4]> {
    match name {
        DatasetName::Mnist => Some([
            "6bbc9ace898e44ae57da46a324031adb",
            "a25bea736e30d166cdddb491f175f624",
            "2646ac647ad5339dbf082846283269ea",
            "27ae3e4e09519cfbb04c329615203637",
        ]),
        DatasetName::FashionMnist => Some([
            "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "9018921c3c673c538a1fc5bad174d6f9",
            "8181f5470baa50b63fa0f6fddb340f0a",
            "15d484375f8d13e6eb1aabb0c3f46965",
        ]),
        DatasetName::Kmnist | DatasetName::Cifar10 | DatasetName::Dsprites => None,
    }
}

/// The published md5 of the decompressed content of `file` (an IDX `.gz`) of `name`.
fn content_md5(name: DatasetName, file: &str) -> Option<&'static str> {
    let k = FILE_NAMES.iter().position(|f| *f == file)?;
    content_md5s(name).map(|m| m[k])
}

const ALL: [DatasetName; 5] = [
    DatasetName::Mnist,
    DatasetName::FashionMnist,
    DatasetName::Kmnist,
    DatasetName::Cifar10,
    DatasetName::Dsprites,
];

/// The dataset and file a published md5 belongs to, to say what a wrong file is.
fn known_as(md5: &str) -> Option<(DatasetName, String)> {
    ALL.into_iter()
        .flat_map(|d| d.remote_files().into_iter().map(move |f| (d, f)))
        .find(|(_, f)| f.md5 == md5)
        .map(|(d, f)| (d, f.name))
}

/// The dataset and file whose published decompressed content has this md5.
fn known_content(md5: &str) -> Option<(DatasetName, &'static str)> {
    ALL.into_iter()
        .filter_map(|d| content_md5s(d).map(|m| (d, m)))
        .find_map(|(d, m)| (0..4).find(|&k| m[k] == md5).map(|k| (d, FILE_NAMES[k])))
}

/// No IDX file of these datasets decompresses to more than this (MNIST's training images are 47 MB).
const MAX_IDX_BYTES: u64 = 256 << 20;

/// Lowercase hex md5 of what a gzip file decompresses to (at most [`MAX_IDX_BYTES`]); `None` when it is not
/// gzip or is cut short.
fn gunzipped_md5(path: &Path) -> Result<Option<String>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut gz = flate2::read::GzDecoder::new(std::io::BufReader::new(f)).take(MAX_IDX_BYTES);
    let mut hasher = <md5::Md5 as md5::Digest>::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match gz.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => md5::Digest::update(&mut hasher, &buf[..n]),
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(format!("{:x}", md5::Digest::finalize(hasher))))
}

/// How a file whose md5 is not the published one's differs: the published content in another wrapper (`Ok`,
/// with a line saying so), or what it is instead (`Err`, the reason for the error line).
fn judge_mismatch(
    name: DatasetName,
    file: &RemoteFile,
    path: &Path,
    got: &str,
    gz: bool,
) -> Result<std::result::Result<(), String>> {
    if let Some((d, f)) = known_as(got) {
        return Ok(Err(format!("it is {d}'s {f}")));
    }
    let content = if gz {
        gunzipped_md5(path)?
    } else {
        Some(got.to_string())
    };
    let Some(content) = content else {
        return Ok(Err(
            "it matches no file elbo knows: it is not a whole gzip file (damaged or cut short)"
                .to_string(),
        ));
    };
    let plain = file.name.trim_end_matches(".gz");
    if content_md5(name, &file.name) == Some(content.as_str()) {
        if gz {
            crate::notes::say!(
                "elbo: {}: recompressed (its gzip wrapper is not the published one, its content is {name}'s published {plain}); using it",
                path.display()
            );
        }
        return Ok(Ok(()));
    }
    let recompressed = if gz {
        ", recompressed"
    } else {
        ", decompressed"
    };
    Ok(Err(match known_content(&content) {
        Some((d, f)) => format!("it is {d}'s {}{recompressed}", f.trim_end_matches(".gz")),
        None if content_md5s(name).is_none() && gz => format!(
            "it matches no file elbo knows (damaged, another dataset's, or recompressed: {name} publishes no checksum of its decompressed files, so a recompressed copy cannot be checked)"
        ),
        None => "it matches no file elbo knows (damaged, or another dataset's)".to_string(),
    }))
}

/// Checks a local compressed file against its published md5 (or, where it is recompressed, its published
/// content's md5), once: a stamp of its size, modification time and md5 in the user cache remembers files
/// already checked. Uncompressed IDX files are not checked.
fn verify(name: DatasetName, file: &RemoteFile, path: &Path) -> Result<()> {
    let path_s = path.to_string_lossy();
    // Decompressed IDX files are the user's to vouch for: they may be a dataset's own files under its names.
    if !path_s.ends_with(&file.name) {
        return Ok(());
    }
    let expected = file.md5.as_str();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let abs = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let stamp_dir = super::cache::dir().join("verified");
    let stamp = stamp_dir.join(format!(
        "{:x}",
        <md5::Md5 as md5::Digest>::digest(abs.to_string_lossy().as_bytes())
    ));
    let want = format!("{} {mtime} {expected}", meta.len());
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(());
    }
    let got = download::md5_file(path)?;
    if got != expected
        && let Err(what) = judge_mismatch(name, file, path, &got, file.name.ends_with(".gz"))?
    {
        return Err(Error::Config(format!(
            "{}: this is not {name}'s {}: its md5 is {got}, not {expected}; {what}. Point --data-dir or ELBO_DATA_DIR at {name}'s files, or remove the file to download it",
            path.display(),
            file.name,
        )));
    }
    // Remembering is an optimisation: a cache that cannot be written only means checking again next time.
    if std::fs::create_dir_all(&stamp_dir).is_ok() {
        let _ = crate::fsutil::write_atomic(&stamp, want.as_bytes());
    }
    Ok(())
}

/// Loads the train and test splits of a dataset from `dir`, downloading missing files first.
pub fn load_dataset(name: DatasetName, dir: &Path) -> Result<(Dataset, Dataset)> {
    let mut missing = Vec::new();
    for f in name.remote_files() {
        match existing(dir, &f.name)? {
            Some(p) => verify(name, &f, &p)?,
            None => missing.push(f),
        }
    }
    if !missing.is_empty() && !download::ENABLED {
        let names: Vec<&str> = missing.iter().map(|f| f.name.as_str()).collect();
        return Err(Error::Config(format!(
            "{name}: {} missing in {}, and this build of elbo does not download (its `download` feature is off): put the files there, or point --data-dir or ELBO_DATA_DIR at a folder that has them",
            names.join(", "),
            dir.display()
        )));
    }
    if !missing.is_empty() {
        let created = !dir.exists();
        let mirrors = download::mirrors_for(name.mirrors());
        if let Err(e) = download::fetch_all(&missing, dir, &mirrors) {
            // Leave no empty folder behind for a download that never happened.
            if created {
                let _ = std::fs::remove_dir(dir);
            }
            let names: Vec<&str> = missing.iter().map(|f| f.name.as_str()).collect();
            let generate = if name == DatasetName::Dsprites {
                "; or draw the same factor grid with `elbo make-dsprites --out dsprites.npz` and train with --data dsprites.npz"
            } else {
                ""
            };
            return Err(Error::Config(format!(
                "{name}: {} missing in {} and the download failed ({e}); put the files there, point --data-dir or ELBO_DATA_DIR at a folder that has them, or ELBO_MIRROR at a mirror{generate}",
                names.join(", "),
                dir.display()
            )));
        }
    }
    let path = |n: &str| {
        existing(dir, n)
            .ok()
            .flatten()
            .expect("file present after download")
    };
    let (mut train, mut test) = if name == DatasetName::Cifar10 {
        read_cifar10(&path(CIFAR10_FILE))?
    } else if name == DatasetName::Dsprites {
        read_dsprites(&path(super::dsprites::FILE))?
    } else {
        let train = from_idx_files(&path(FILE_NAMES[0]), &path(FILE_NAMES[1]))?;
        let test = from_idx_files(&path(FILE_NAMES[2]), &path(FILE_NAMES[3]))?;
        if train.shape != test.shape {
            return Err(Error::Idx {
                path: path(FILE_NAMES[2]),
                reason: format!(
                    "test images are {} but training images are {}",
                    test.shape, train.shape
                ),
            });
        }
        (train, test)
    };
    let names: Vec<String> = name.class_names().iter().map(|s| s.to_string()).collect();
    for (ds, file) in [(&mut train, 1), (&mut test, 3)] {
        if let Some(&l) = ds
            .labels
            .iter()
            .flatten()
            .find(|&&l| l as usize >= names.len())
        {
            let file = if name == DatasetName::Cifar10 {
                CIFAR10_FILE
            } else {
                FILE_NAMES[file]
            };
            return Err(Error::Config(format!(
                "{}: label {l} is outside {name}'s {} classes (0 to {}): the file is damaged or not {name}'s",
                dir.join(file).display(),
                names.len(),
                names.len() - 1
            )));
        }
        ds.classes = names.clone();
    }
    Ok((train, test))
}

/// Fraction of dSprites held out as its test split (it has none of its own), chosen with a fixed seed.
pub const DSPRITES_TEST_FRACTION: f64 = 0.1;

/// DeepMind's dSprites file, split into training items and a fixed held-out tenth.
fn read_dsprites(path: &Path) -> Result<(Dataset, Dataset)> {
    match super::numpy::load(path, None)? {
        super::images::Found::One(ds) if ds.factors.is_some() => {
            Ok(ds.split_fraction(DSPRITES_TEST_FRACTION, super::source::SPLIT_SEED))
        }
        _ => Err(Error::Config(format!(
            "{}: not in dSprites' layout (imgs and latents_classes)",
            path.display()
        ))),
    }
}

/// Bytes of one CIFAR-10 record: the label, then 32×32 red, green and blue planes.
const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// Reads the training batches (`data_batch_1.bin` … `data_batch_5.bin`) and `test_batch.bin` from the binary
/// CIFAR-10 archive, without unpacking it to disk.
pub fn read_cifar10(path: &Path) -> Result<(Dataset, Dataset)> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("not a CIFAR-10 binary archive: {reason}"),
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut batches: Vec<(String, Vec<u8>)> = Vec::new();
    let entries = archive.entries().map_err(|e| bad(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !(name.starts_with("data_batch_") || name == "test_batch.bin") || !name.ends_with(".bin")
        {
            continue;
        }
        // Each batch holds 10000 records; nothing larger is read.
        let mut bytes = Vec::new();
        (&mut entry)
            .take((10_000 * CIFAR_RECORD + 1) as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("{name}: {e}")))?;
        if bytes.len() % CIFAR_RECORD != 0
            || bytes.is_empty()
            || bytes.len() > 10_000 * CIFAR_RECORD
        {
            return Err(bad(format!(
                "{name} holds {} bytes, not whole records of {CIFAR_RECORD}",
                bytes.len()
            )));
        }
        batches.push((name, bytes));
    }
    batches.sort();
    let decode = |bytes: &[&[u8]]| -> Result<Dataset> {
        let n: usize = bytes.iter().map(|b| b.len() / CIFAR_RECORD).sum();
        let mut px = Vec::with_capacity(n * 3072);
        let mut labels = Vec::with_capacity(n);
        for rec in bytes.iter().flat_map(|b| b.chunks_exact(CIFAR_RECORD)) {
            if rec[0] > 9 {
                return Err(bad(format!(
                    "label {} is not one of the 10 classes",
                    rec[0]
                )));
            }
            labels.push(rec[0] as u32);
            let planes = &rec[1..];
            // Planes (CHW) to pixels (HWC).
            for p in 0..1024 {
                px.extend_from_slice(&[planes[p], planes[1024 + p], planes[2048 + p]]);
            }
        }
        Dataset::from_bytes(
            ItemShape {
                height: 32,
                width: 32,
                channels: 3,
            },
            px,
            Some(labels),
        )
    };
    let train: Vec<&[u8]> = batches
        .iter()
        .filter(|(n, _)| n.starts_with("data_batch_"))
        .map(|(_, b)| &b[..])
        .collect();
    let test: Vec<&[u8]> = batches
        .iter()
        .filter(|(n, _)| n == "test_batch.bin")
        .map(|(_, b)| &b[..])
        .collect();
    if train.is_empty() || test.is_empty() {
        return Err(bad("it has no data_batch_N.bin or no test_batch.bin".into()));
    }
    Ok((decode(&train)?, decode(&test)?))
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
        let err = from_idx_files(&im, &lb).unwrap_err().to_string();
        assert!(err.contains("2 labels for 3 images"), "{err}");
        let err = from_idx_files(&lb, &lb).unwrap_err().to_string();
        assert!(err.contains("expected 3 dimensions"), "{err}");
        let lb3 = write(tmp.path(), "lb3", &[3], &[1, 2, 3]);
        let ds = from_idx_files(&im, &lb3).unwrap();
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
        assert_eq!(
            "CIFAR-10".parse::<DatasetName>().unwrap(),
            DatasetName::Cifar10
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
            DatasetName::Cifar10,
        ] {
            assert!(name.mirrors().iter().all(|m| m.starts_with("https://")));
            assert!(!name.remote_files().is_empty());
        }
    }

    /// A CIFAR-10 archive in the published layout, with `n` records per batch; record i has label i % 10 and
    /// pixel values from i.
    pub(crate) fn tiny_cifar(n: usize) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for name in [
            "data_batch_1.bin",
            "data_batch_2.bin",
            "test_batch.bin",
            "batches.meta.txt",
        ] {
            let mut bytes = Vec::new();
            if name.ends_with(".bin") {
                for i in 0..n {
                    bytes.push((i % 10) as u8);
                    for c in 0..3 {
                        bytes.extend(std::iter::repeat_n((i * 3 + c) as u8, 1024));
                    }
                }
            } else {
                bytes.extend_from_slice(b"airplane\n");
            }
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, format!("cifar-10-batches-bin/{name}"), &bytes[..])
                .unwrap();
        }
        let raw = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn cifar_records_become_hwc_images() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(CIFAR10_FILE);
        std::fs::write(&p, tiny_cifar(12)).unwrap();
        let (train, test) = read_cifar10(&p).unwrap();
        assert_eq!((train.len(), test.len()), (24, 12));
        assert_eq!(train.shape.channels, 3);
        assert_eq!(train.label(11), 1);
        let crate::data::Values::U8(v) = &test.values else {
            panic!()
        };
        // Item 5: red 15, green 16, blue 17 at every pixel.
        assert_eq!(&v[5 * 3072..5 * 3072 + 6], &[15, 16, 17, 15, 16, 17]);
        std::fs::write(&p, b"not an archive").unwrap();
        assert!(
            read_cifar10(&p)
                .unwrap_err()
                .to_string()
                .contains("not a CIFAR-10")
        );
    }

    /// Without the `download` feature a missing dataset is refused at once, saying where the files go and
    /// offering nothing this build cannot do (no mirror).
    #[cfg(not(feature = "download"))]
    #[test]
    fn without_downloads_a_missing_dataset_says_where_its_files_go() {
        let tmp = tempfile::tempdir().unwrap();
        let e = load_dataset(DatasetName::Mnist, tmp.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not download")
                && e.contains("t10k-labels-idx1-ubyte.gz")
                && e.contains("--data-dir")
                && !e.contains("MIRROR")
                && !e.contains("failed"),
            "{e}"
        );
    }

    #[test]
    fn dsprites_holds_out_a_fixed_tenth_with_its_factors() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join(super::super::dsprites::FILE);
        let items = super::super::dsprites::grid_items(Some(200), 5).unwrap();
        super::super::dsprites::write_npz(&file, &items, "test", &|_| true).unwrap();
        let (train, test) = read_dsprites(&file).unwrap();
        assert_eq!((train.len(), test.len()), (180, 20));
        let (train2, test2) = read_dsprites(&file).unwrap();
        assert_eq!(
            (train.factors.clone(), test.factors.clone()),
            (train2.factors, test2.factors)
        );
        // Every item keeps its own factors: its image is the one the generator draws for them.
        let f = test.factors.as_deref().unwrap();
        for i in 0..test.len() {
            let mut img = vec![0u8; 64 * 64];
            super::super::dsprites::render(f.row(i), &mut img);
            let mut row = vec![0f32; 64 * 64];
            test.fill_row(i, &mut row);
            assert!(
                row.iter().zip(&img).all(|(a, &b)| *a == b as f32),
                "item {i}"
            );
        }
    }
}
