//! Training: the epoch loop, per-epoch evaluation, checkpoints and metrics.

pub mod checkpoint;
pub mod config;

pub mod interrupt;
pub mod lock;
pub mod metrics;
pub mod observe;
pub mod settings;

pub use checkpoint::{Checkpoint, TrainState, load_run};
pub use config::{DataInfo, Reduction, RunConfig, TrainConfig};
pub use lock::RunLock;
pub use metrics::{EpochMetrics, SplitMetrics};
pub use observe::{Flow, Observer, Quiet};
pub use settings::Settings;

use crate::core::{Adam, Optimizer, dist};
use crate::data::batch::binarize_static;
use crate::data::{
    self, Batcher, Binarize, Dataset, ItemShape, Kind, Loaded, load_dataset, resolve_data_dir,
};
use crate::error::{Error, Result};
use crate::eval::EvalBuffers;
use crate::model::config::PriorSpec;
use crate::model::vamp::PseudoInit;
use crate::model::{BatchStats, Estimator, Objective, Vae};
pub use crate::resources::{available_memory, check_memory};
use rand::SeedableRng;
use std::path::Path;
use std::time::Instant;

/// Salts that derive independent RNG streams from the run's one seed.
const DATA_SALT: u64 = 0x0da7_a000;
const NOISE_SALT: u64 = 0x0015_e000;
const STATIC_SALT: u64 = 0x57a7_1c00;
const TEST_SALT: u64 = 0x7e57_0000;
const PSEUDO_SALT: u64 = 0x05e0_d000;

/// The data a run sees, prepared as its config says.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training images (limited, binarised if static).
    pub train: Dataset,
    /// Held-out training images, if any.
    pub validation: Option<Dataset>,
    /// Test images (binarised once, with a fixed seed, when training binarises).
    pub test: Dataset,
}

/// The facts about a dataset that settle a model's shape and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataFacts {
    /// Shape of one item.
    pub shape: ItemShape,
    /// What the values are.
    pub kind: Kind,
    /// Number of classes (0: unlabelled).
    pub classes: usize,
    /// Whether the values are 8-bit levels (images, byte arrays) rather than floats.
    pub bytes: bool,
}

impl DataFacts {
    /// The facts of a loaded dataset.
    pub fn of(loaded: &Loaded) -> Self {
        DataFacts {
            shape: loaded.train.shape,
            kind: loaded.train.kind,
            bytes: matches!(loaded.train.values, crate::data::Values::U8(_)),
            classes: if loaded.train.is_labelled() {
                loaded.train.classes.len()
            } else {
                0
            },
        }
    }

    /// MNIST's: 28×28 grey images in 10 classes.
    pub fn mnist() -> Self {
        DataFacts {
            shape: ItemShape::grey(28, 28),
            kind: Kind::Image,
            classes: 10,
            bytes: true,
        }
    }
}

/// Refuses a data folder named for a run that reads its own `--data` file: the folder is only where named datasets
/// live, and reading the file regardless would ignore what the user asked for without a word.
pub fn check_data_dir(
    data: Option<&data::source::DataSpec>,
    data_dir: Option<&Path>,
) -> Result<()> {
    if let (Some(spec), Some(dir)) = (data, data_dir) {
        return Err(Error::Config(format!(
            "--data-dir {} is where named datasets live, but this run reads its own --data {}: leave --data-dir out",
            dir.display(),
            spec.path.display()
        )));
    }
    Ok(())
}

/// Reads a run's data as stored (a named dataset from `data_dir`, or the user's own), unsplit by `--limit`
/// and `--validation` and not yet standardised.
pub fn open_data(t: &TrainConfig, data_dir: Option<&Path>) -> Result<Loaded> {
    match &t.data {
        Some(spec) => data::source::load(spec, t.seed),
        None => {
            let dir = resolve_data_dir(t.dataset, data_dir);
            let (train, test) = load_dataset(t.dataset, &dir)?;
            Ok(Loaded {
                train,
                test,
                columns: Vec::new(),
                own_split: true,
            })
        }
    }
}

/// Loads a run's data: dataset, `--limit`, validation split, standardisation and binarisation.
pub fn load_splits(cfg: &RunConfig, data_dir: Option<&Path>) -> Result<Splits> {
    // The user named no file here: say whose file is missing.
    if let Some(spec) = &cfg.train.data
        && let Err(e) = std::fs::symlink_metadata(&spec.path)
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Err(Error::io(
            &spec.path,
            std::io::Error::new(
                e.kind(),
                "the data this run was trained on (--data) is not there any more: put it back to read the run's data",
            ),
        ));
    }
    let loaded = open_data(&cfg.train, data_dir)?;
    let mut cfg = cfg.clone();
    prepare(&mut cfg, loaded)
}

/// Whether weights and optimiser state can be saved and read back. A NaN gradient in the last step would only
/// show in the next loss, and Adam's second moment overflows first (a gradient above 1.8e19 squares to
/// infinity in f32) while the weights stay finite; the loader refuses either, so training calls it divergence.
fn savable(params: &crate::core::Params<f32>, adam: &crate::core::Adam<f32>) -> bool {
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    finite(&params.data) && finite(&adam.m) && finite(&adam.v)
}

/// Training steps between returning a mapped dataset's pages: 64 batches of 64 CelebA images touch 64 MB.
const RELEASE_EVERY: usize = 64;

/// md5 over both splits' shape, values, labels and class names.
fn fingerprint(train: &Dataset, test: &Dataset) -> String {
    use md5::Digest;
    let mut h = md5::Md5::new();
    for ds in [train, test] {
        h.update(ds.shape.to_string());
        match &ds.values {
            data::Values::U8(v) => v.scan(1 << 24, |c| h.update(c)),
            data::Values::F32(v) => v.chunks(1 << 14).for_each(|c| {
                h.update(c.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
            }),
        }
        if let Some(l) = &ds.labels {
            l.chunks(1 << 14).for_each(|c| {
                h.update(c.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
            });
        }
        h.update(ds.classes.join("\n"));
    }
    format!("{:x}", h.finalize())
}

/// Two class names that spell one number ("1" and "1.0"), which runs saved before numeric labels were merged
/// may hold as two classes.
fn same_number(classes: &[String]) -> Option<(&str, &str)> {
    let mut numbers: Vec<(f64, &str)> = classes
        .iter()
        .filter_map(|c| Some((c.parse::<f64>().ok().filter(|v| v.is_finite())?, c.as_str())))
        .collect();
    numbers.sort_by(|a, b| a.0.total_cmp(&b.0));
    numbers
        .windows(2)
        .find(|w| w[0].0 == w[1].0)
        .map(|w| (w[0].1, w[1].1))
}

/// Turns loaded data into a run's splits, checking it against the model. A new run (no saved data facts)
/// records the class names, columns and, for tables, the training split's standardisation in `cfg.data`.
pub fn prepare(cfg: &mut RunConfig, loaded: Loaded) -> Result<Splits> {
    let t = cfg.train.clone();
    let name = cfg.data_name();
    let Loaded {
        mut train,
        mut test,
        columns,
        ..
    } = loaded;
    if train.is_empty() || test.is_empty() {
        return Err(Error::Config(format!(
            "{name} has {} training and {} test items; both splits need at least one",
            train.len(),
            test.len()
        )));
    }
    if !cfg.data.classes.is_empty() {
        // A saved run's labels index its saved class list (a table run from before numeric labels sorted as
        // numbers lists them in text order); data whose classes it lacks fail the fingerprint below.
        for ds in [&mut train, &mut test] {
            if ds.is_labelled() {
                let _ = ds.relabel(&cfg.data.classes);
            }
        }
    }
    let fingerprint = fingerprint(&train, &test);
    train.release();
    test.release();
    if let Some(saved) = &cfg.data.fingerprint
        && *saved != fingerprint
    {
        if let Some((a, b)) = same_number(&cfg.data.classes) {
            return Err(Error::Config(format!(
                "{name}: this run was trained by an earlier elbo, which took labels '{a}' and '{b}' for two classes; they are one class now: train a new run"
            )));
        }
        return Err(Error::Config(format!(
            "{name} has changed since this run was trained (items added, removed or edited, or classes renamed): its splits and statistics would no longer match the model's; train a new run on the data as it is now"
        )));
    }
    let m = &cfg.model;
    let want = ItemShape {
        height: m.rows,
        width: m.cols,
        channels: m.channels,
    };
    if train.shape != want || test.shape != want {
        return Err(Error::Config(format!(
            "{name} items are {} (height x width x channels), the model expects {want}",
            train.shape
        )));
    }
    if m.is_conditional() {
        let k = m.classes;
        let found = train
            .labels
            .iter()
            .chain(&test.labels)
            .flatten()
            .find(|&&l| l as usize >= k);
        if !train.is_labelled() || !test.is_labelled() {
            return Err(Error::Config(format!(
                "{name} is unlabelled: a conditional model needs class labels (class folders, a y array or --label-column)"
            )));
        }
        if let Some(&l) = found {
            return Err(Error::Config(format!(
                "{name} has a label {l} outside the {k} classes a conditional model is built for: it needs a labelled dataset with classes 0 to {}",
                k - 1
            )));
        }
        let mut seen = vec![false; k];
        for &l in train.labels.iter().flatten() {
            seen[l as usize] = true;
        }
        let unseen: Vec<&str> = (0..k)
            .filter(|&c| !seen[c])
            .map(|c| train.classes.get(c).map_or("?", String::as_str))
            .collect();
        if !unseen.is_empty() {
            return Err(Error::Config(format!(
                "{name}: no training item has class {}: a conditional model cannot learn a class it never sees; train without --conditional, or give the class training items",
                unseen.join(", ")
            )));
        }
    }
    if let Some(n) = t.limit {
        train = train.truncated(n);
    }
    let mut validation = if t.validation > 0 {
        if t.validation >= train.len() {
            return Err(Error::Config(format!(
                "--validation {} leaves no training images out of {}",
                t.validation,
                train.len()
            )));
        }
        Some(train.split_off(t.validation))
    } else {
        None
    };
    if let (PseudoInit::Data, PriorSpec::Vamp { components }) = (t.pseudo_init, cfg.model.prior) {
        enough_for_pseudo_inputs(components, train.len())?;
    }
    let new_run = cfg.data == DataInfo::default();
    cfg.data.fingerprint = Some(fingerprint);
    if new_run && train.is_labelled() && train.classes.len() > 100 {
        crate::notes::say!(
            "elbo: note: {name} has {} classes; if its labels are not classes (a measured value?), train without them",
            train.classes.len()
        );
    }
    if new_run || cfg.data.classes.is_empty() && !train.classes.is_empty() {
        cfg.data.kind = train.kind;
        cfg.data.classes = if train.is_labelled() {
            train.classes.clone()
        } else {
            Vec::new()
        };
        cfg.data.columns = columns;
    }
    if train.kind == Kind::Table {
        let st = cfg
            .data
            .standardizer
            .get_or_insert_with(|| data::Standardizer::fit(&train))
            .clone();
        for ds in [Some(&mut train), Some(&mut test), validation.as_mut()]
            .into_iter()
            .flatten()
        {
            st.apply(ds);
        }
    }
    if t.binarize != Binarize::None {
        if train.kind == Kind::Table {
            return Err(Error::Config(
                "--binarize draws pixels from intensities in [0, 1]; standardised table features have none".into(),
            ));
        }
        // Evaluation data is binarised once, so every epoch and every command scores the same targets.
        binarize_static(
            &mut test,
            &mut rand_pcg::Pcg64Mcg::seed_from_u64(t.seed ^ TEST_SALT),
        );
        if let Some(v) = validation.as_mut() {
            binarize_static(
                v,
                &mut rand_pcg::Pcg64Mcg::seed_from_u64(t.seed ^ TEST_SALT ^ 1),
            );
        }
    }
    if t.binarize == Binarize::Static {
        binarize_static(
            &mut train,
            &mut rand_pcg::Pcg64Mcg::seed_from_u64(t.seed ^ STATIC_SALT),
        );
    }
    Ok(Splits {
        train,
        validation,
        test,
    })
}

/// Reads the user's items at `path` (an image, folder, archive, array or table) as a trained run sees its data:
/// images resized to the model's size and channels, an array read as the run's kind, a table's saved columns
/// standardised with the saved statistics. The order is the source's; items keep their names and classes.
pub fn load_items(cfg: &RunConfig, path: &Path) -> Result<Dataset> {
    let m = &cfg.model;
    let mut spec = cfg.train.data.clone().unwrap_or_else(|| data::DataSpec {
        path: path.to_path_buf(),
        images: Default::default(),
        layout: None,
        label_column: None,
        test_fraction: 0.1,
        test_fraction_given: false,
        split_seed: None,
    });
    if cfg.data.kind == Kind::Image {
        spec.images.size = Some((m.rows, m.cols));
        spec.images.channels = Some(m.channels);
    }
    let columns = (cfg.data.kind == Kind::Table).then_some(&cfg.data.columns[..]);
    let ds = data::source::load_items(&spec, path, columns, cfg.data.kind)?;
    check_items(cfg, ds, path)
}

/// New items read by other means (arrays in memory) made ready for a run as [`load_items`] makes them: checked
/// against its kind and shape, standardised as its training data was, and labelled with its classes; `path`
/// names them in errors.
pub fn check_items(cfg: &RunConfig, mut ds: Dataset, path: &Path) -> Result<Dataset> {
    let m = &cfg.model;
    if ds.kind != cfg.data.kind {
        return Err(Error::Config(format!(
            "{}: these are {}, but this run was trained on {}: give items like its training data",
            path.display(),
            ds.kind.noun(),
            cfg.data.kind.noun()
        )));
    }
    if ds.shape != m.item_shape() && ds.kind != Kind::Image && ds.shape.height == 1 {
        // Rows of features: counted as features, not as images one pixel high.
        return Err(Error::Config(format!(
            "{}: rows of {} features, but this run's model reads {}: give rows with the run's columns{}",
            path.display(),
            ds.shape.len(),
            m.item_shape().len(),
            match cfg.data.columns.len() {
                0 => String::new(),
                n if n > 8 => format!(" ({}, …)", cfg.data.columns[..8].join(", ")),
                _ => format!(" ({})", cfg.data.columns.join(", ")),
            }
        )));
    }
    if ds.shape != m.item_shape() {
        // Flattened images (784 values for 28x28) are the common case: say the values are all there.
        let hint = if ds.shape.len() == m.item_shape().len() {
            format!(
                ": the values are all there, reshape each item to {}",
                m.item_shape()
            )
        } else if ds.len() * ds.shape.len() == m.item_shape().len() {
            // One image given without its item axis reads as rows of one-pixel-high items.
            ": all together they are one item: for a single item, give an array of one (x[None])"
                .to_string()
        } else {
            String::new()
        };
        return Err(Error::Config(format!(
            "{}: items of {} (height x width x channels), but this run's model reads {}{hint}",
            path.display(),
            ds.shape,
            m.item_shape()
        )));
    }
    if matches!(m.likelihood, crate::model::Likelihood::Logistic { .. })
        && matches!(ds.values, data::Values::F32(_))
    {
        return Err(Error::Config(format!(
            "{}: this run's discretised logistic models 8-bit values; these items are floats: give images or a uint8 array",
            path.display()
        )));
    }
    if let Some(st) = &cfg.data.standardizer {
        st.apply(&mut ds);
    }
    say_outside_unit(&ds, path);
    label_items(cfg, path, &mut ds)?;
    Ok(ds)
}

/// Says in a line when items of a run on values in [0, 1] hold others: they are scored as they are (the
/// Bernoulli log-likelihood x·log p + (1−x)·log(1−p) is defined for any x), not clamped or refused.
fn say_outside_unit(ds: &Dataset, path: &Path) {
    let data::Values::F32(v) = &ds.values else {
        return;
    };
    if ds.kind == Kind::Table {
        return;
    }
    let outside = |x: &&f32| !(0.0..=1.0).contains(*x);
    let Some(i) = v.iter().position(|x| outside(&x)) else {
        return;
    };
    let n = v[i..].iter().filter(outside).count();
    crate::notes::say!(
        "elbo: {}: {n} value{} outside [0, 1] (the first {} in item {}) {} used as {}, by a model of values in [0, 1]",
        path.display(),
        if n == 1 { "" } else { "s" },
        v[i],
        i / ds.dim().max(1),
        if n == 1 { "is" } else { "are" },
        if n == 1 { "it is" } else { "they are" },
    );
}

/// Gives new items the run's class numbers: an image's class is the folder it lies in, an array's its `y`, a
/// table row's its label column. A conditional model needs every item's class, one of the run's; for any other
/// model classes only label the output, and one the run does not know is numbered after the run's.
fn label_items(cfg: &RunConfig, path: &Path, ds: &mut Dataset) -> Result<()> {
    let conditional = cfg.model.is_conditional();
    // An image's class is read from its path as training read it ("" for one in no class folder); items with
    // labels of their own (an `.npz`'s y arrays, whose rows are named `x_train[i]`) keep them.
    let from_paths = ds.kind == Kind::Image && !ds.names.is_empty() && !ds.is_labelled();
    let parents: Vec<String> = if from_paths {
        data::images::classes_of(&ds.names, &cfg.data.classes)
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    } else {
        Vec::new()
    };
    if from_paths
        && (conditional || !cfg.data.classes.is_empty() && parents.iter().all(|p| !p.is_empty()))
    {
        let classes: Vec<String> = parents
            .iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        ds.labels = Some(
            parents
                .iter()
                .map(|p| {
                    classes
                        .binary_search_by(|c| c.as_str().cmp(p))
                        .expect("a class of the set") as u32
                })
                .collect(),
        );
        ds.classes = classes;
    }
    if conditional && !ds.is_labelled() {
        return Err(Error::Config(format!(
            "{}: this run's model is conditional and needs each item's class (its folder, a y array or the label column), but these items have none",
            path.display()
        )));
    }
    if !ds.is_labelled() || cfg.data.classes.is_empty() {
        return Ok(());
    }
    // Labels index the run's classes, not the new source's own sorted names.
    let own = std::mem::take(&mut ds.classes);
    let mut classes = cfg.data.classes.clone();
    for l in ds.labels.iter_mut().flatten() {
        let name = &own[*l as usize];
        *l = match classes.iter().position(|c| c == name) {
            Some(i) => i,
            None if !conditional => {
                classes.push(name.clone());
                classes.len() - 1
            }
            None => {
                let known = cfg.data.classes.join(", ");
                return Err(Error::Config(if name.is_empty() {
                    format!(
                        "{}: a conditional run takes each image's class from its folder, and these images lie in none: give the folder holding the class folders ({known})",
                        path.display()
                    )
                } else {
                    format!(
                        "{}: class '{name}' is not one of the run's classes ({known})",
                        path.display()
                    )
                }));
            }
        } as u32;
    }
    ds.classes = classes;
    Ok(())
}

/// How a training run starts.
pub enum Start {
    /// A new run from a config.
    New(Box<RunConfig>),
    /// Continuing from a checkpoint, optionally to a new total of epochs.
    Resume(Box<Checkpoint>, Option<usize>),
}

/// Trains, writing `config.json`, a checkpoint of the initial weights for a new run, and a checkpoint and
/// `metrics.csv` after every epoch; returns the metric history.
pub fn train(
    run_dir: &Path,
    data_dir: Option<&Path>,
    start: Start,
    observer: &mut dyn Observer,
) -> Result<Vec<EpochMetrics>> {
    let (start, splits) = match start {
        Start::New(mut cfg) => {
            let loaded = open_data(&cfg.train, data_dir)?;
            let splits = prepare(&mut cfg, loaded)?;
            (Start::New(cfg), splits)
        }
        Start::Resume(ck, epochs) => {
            let splits = load_splits(&ck.config, data_dir)?;
            (Start::Resume(ck, epochs), splits)
        }
    };
    let cfg = match &start {
        Start::New(cfg) => cfg.as_ref(),
        Start::Resume(ck, _) => &ck.config,
    };
    preflight(cfg, &splits)?;
    train_on(run_dir, &splits, start, observer)
}

/// Refuses to train when the ranks do not hold the same run: the same config (data fingerprint included),
/// epoch, optimiser step and weights. Ranks that read different folders (no shared filesystem) would otherwise
/// train together on mixed gradients, or wait for each other forever.
fn ranks_agree(
    cfg: &RunConfig,
    vae: &Vae<f32>,
    adam: &crate::core::Adam<f32>,
    state: &TrainState,
) -> Result<()> {
    use md5::Digest;
    let mut h = md5::Md5::new();
    h.update(serde_json::to_string(cfg).unwrap_or_default());
    h.update(state.epoch.to_le_bytes());
    h.update(adam.t.to_le_bytes());
    for v in vae.params.data.chunks(1 << 14) {
        h.update(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
    }
    let d = h.finalize();
    // Two 32-bit halves of the first 8 bytes, exact in f64.
    let mine = [
        u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as f64,
        u32::from_le_bytes([d[4], d[5], d[6], d[7]]) as f64,
    ];
    let mut all = vec![0.0; 2 * dist::size()];
    dist::all_gather(&mine, &mut all);
    if let Some(r) = all.chunks_exact(2).position(|p| p != mine) {
        return Err(Error::Config(format!(
            "rank {r} holds another run than rank {} (settings, data, epoch or weights differ): every rank must read the same run directory and data, on a filesystem they share",
            dist::rank()
        )));
    }
    Ok(())
}

/// Refuses a rank count that does not divide the run's shards.
fn check_shards(shards: usize) -> Result<()> {
    if !shards.is_multiple_of(dist::size()) {
        return Err(Error::Config(format!(
            "this run computes its gradients in parts (--shards {shards}), which {} ranks cannot share: use a number of ranks that divides {shards}",
            dist::size(),
        )));
    }
    Ok(())
}

/// Checks, before anything is written or allocated, that a run's training buffers fit in memory.
pub fn preflight(cfg: &RunConfig, splits: &Splits) -> Result<()> {
    check_shards(cfg.train.shards)?;
    let batch = cfg.train.batch_size.min(splits.train.len());
    if cfg.model.batch_norm && batch < 2 {
        return Err(Error::Config(format!(
            "--batch-norm normalises over the batch, which needs at least 2 items, but the training split has {}: use more data (--limit, --validation) or no --batch-norm",
            splits.train.len()
        )));
    }
    // PIWAE keeps the decoder's outputs for its second backward pass, one more value per pixel of every draw.
    let piwae = if cfg.train.objective == Estimator::Piwae {
        batch as u128 * cfg.train.samples as u128 * cfg.model.input_dim() as u128
    } else {
        0
    };
    check_memory(
        cfg.model.workspace_len(batch, cfg.train.samples)? + piwae,
        "--batch-size x --samples",
    )
}

/// [`train`] on data already loaded with [`load_splits`] and checked with [`preflight`].
pub fn train_on(
    run_dir: &Path,
    splits: &Splits,
    start: Start,
    observer: &mut dyn Observer,
) -> Result<Vec<EpochMetrics>> {
    let (cfg, mut vae, mut adam, mut state) = begin(start, &splits.train)?;
    if dist::size() > 1 {
        ranks_agree(&cfg, &vae, &adam, &state)?;
    }
    let writer = dist::is_writer();
    if writer {
        publish_start(run_dir, &cfg, &vae, &adam, &state)?;
    }
    // From here until the run is saved the first weight is stored input-major (see `saved_layout`).
    sparse_layout(&mut vae, &mut adam, true);
    let t = cfg.train.clone();
    let d = cfg.model.input_dim();
    let batcher = Batcher {
        batch_size: t.batch_size,
        binarize: t.binarize,
        flip: t.random_flip,
    };
    let n = splits.train.len();
    let batch = t.batch_size.min(n);
    let mut ws = vae.workspace(batch, t.samples);
    let mut x = vec![0f32; batch * d];
    let mut eval_ws = EvalBuffers::new(&vae);
    let mut sharded = if t.shards > 1 || dist::size() > 1 {
        check_shards(t.shards)?;
        Some(Sharded::new(&vae, &t, batch))
    } else {
        None
    };
    if state.epoch >= t.epochs {
        observer.note(&format!(
            "elbo: the run has already completed {} of {} epochs",
            state.epoch, t.epochs
        ));
    }
    // A signal stops training between steps; the epochs before this one are kept.
    let stopped = |signal, epoch: usize| Error::Interrupted {
        signal,
        kept: epoch - 1,
        finished: false,
        dir: run_dir.to_path_buf(),
    };
    (|| -> Result<()> {
        for epoch in state.epoch + 1..=t.epochs {
            observer.epoch_start(epoch, t.epochs, n);
            let started = Instant::now();
            let lr = t.lr_schedule.lr(t.lr, epoch, t.epochs);
            let steps = n.div_ceil(batch);
            let order = batcher.epoch_order(n, &mut state.data_rng);
            let mut stats = BatchStats::default();
            let mut disc = DiscriminatorTally::default();
            for (step, idx) in order.chunks(batch).enumerate() {
                // A program that installed an [`interrupt::Catch`] stops between two steps on its signal (ranks
                // of a sharded step agree on it inside the step, so none waits for one that left).
                if let Some(signal) = interrupt::received().filter(|_| sharded.is_none()) {
                    observer.abandon();
                    return Err(stopped(signal, epoch));
                }
                let rows = idx.len();
                batcher.fill(&splits.train, idx, &mut state.data_rng, &mut x[..rows * d]);
                // Pages of a memory-mapped dataset count against this process until given back.
                if step % RELEASE_EVERY == RELEASE_EVERY - 1 {
                    splits.train.release();
                }
                for (l, &i) in ws.labels.iter_mut().zip(idx) {
                    *l = splits.train.label(i);
                }
                let progress = (epoch - 1) as f64 + step as f64 / steps as f64;
                let objective = step_objective(&t, progress, adam.t, n);
                let st = if let Some(sh) = &mut sharded {
                    vae.draw_eps_into(rows, t.samples, &mut sh.eps, &mut state.noise_rng);
                    let (st, stop) =
                        sh.step(&mut vae, &x[..rows * d], idx, splits, &objective, &mut ws);
                    if let Some(signal) = stop {
                        observer.abandon();
                        return Err(stopped(signal, epoch));
                    }
                    st
                } else {
                    vae.draw_eps(rows, &mut ws, &mut state.noise_rng);
                    vae.loss_and_grad(&x[..rows * d], rows, &objective, &mut ws)
                };
                let loss = match t.objective {
                    Estimator::Elbo => st.recon + objective.beta * st.kl,
                    _ => st.iwae,
                };
                let updated = if loss.is_finite() {
                    update(&t, &mut vae, &mut adam, lr, rows)
                } else {
                    Err(format!("the loss became {}", loss / rows as f64))
                };
                if let Err(what) = updated {
                    observer.abandon();
                    return Err(Error::Diverged {
                        epoch,
                        step: step + 1,
                        what,
                        fix: divergence_fix(&t).into(),
                    });
                }
                vae.update_running_stats(&ws);
                stats.add(st);
                if vae.discriminator_start().is_some() && rows >= 2 {
                    disc.add(&ws.discriminator, rows);
                }
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                observer.step(stats.n, loss / rows as f64, stats.n as f64 / secs);
            }
            let seconds = started.elapsed().as_secs_f64();
            let eval_seed = t.seed ^ TEST_SALT ^ (epoch as u64);
            let test: SplitMetrics = eval_ws.elbo(&vae, &splits.test, eval_seed).into();
            let validation = splits
                .validation
                .as_ref()
                .map(|v| eval_ws.elbo(&vae, v, eval_seed ^ 1).into());
            let row = EpochMetrics {
                epoch,
                train: stats.into(),
                test,
                validation,
                seconds,
                lr,
                train_neg_iwae: t
                    .objective
                    .is_importance_weighted()
                    .then(|| stats.iwae / stats.n.max(1) as f64),
                discriminator: disc.mean(),
            };
            if !row.is_finite() || !savable(&vae.params, &adam) {
                return Err(Error::Diverged {
                    epoch,
                    step: n.div_ceil(batch),
                    what: if row.is_finite() {
                        "the weights or the optimiser's moments overflowed (the loss was still finite)"
                    } else {
                        "the epoch's metrics are not finite"
                    }
                    .into(),
                    fix: divergence_fix(&t).into(),
                });
            }
            state.epoch = epoch;
            state.adam_t = adam.t;
            state.history.push(row);
            if writer {
                saved_layout(&mut vae, &mut adam, |vae, adam| {
                    save_epoch(run_dir, &cfg, vae, adam, &state)
                })?;
            }
            let gathered = sharded
                .as_mut()
                .filter(|_| dist::size() > 1)
                .map(|sh| std::mem::take(&mut sh.gather).as_secs_f64());
            let line = epoch_line(&cfg, &row, gathered);
            if observer.epoch_end(&row, &line) == Flow::Stop {
                break;
            }
        }
        Ok(())
    })()?;
    Ok(state.history)
}

/// Stores the encoder's first weight, and Adam's moments for it, input-major (`on`) so that it multiplies only a
/// sparse batch's nonzero values, or back in PyTorch's layout.
fn sparse_layout(vae: &mut Vae<f32>, adam: &mut Adam<f32>, on: bool) {
    let Adam { m, v, .. } = adam;
    vae.multiply_sparse_inputs(on, &mut [&mut m[..], &mut v[..]]);
}

/// Runs `f` on the model and optimiser in the layout checkpoints keep (PyTorch's), then goes back to training's.
fn saved_layout<R>(
    vae: &mut Vae<f32>,
    adam: &mut Adam<f32>,
    f: impl FnOnce(&Vae<f32>, &Adam<f32>) -> R,
) -> R {
    sparse_layout(vae, adam, false);
    let r = f(vae, adam);
    sparse_layout(vae, adam, true);
    r
}

/// The run a [`Start`] describes: a new one from its config and seed, or a checkpoint to continue (to a new
/// epoch count, checked before anything is saved).
fn begin(start: Start, train: &Dataset) -> Result<(RunConfig, Vae<f32>, Adam<f32>, TrainState)> {
    match start {
        Start::New(cfg) => {
            let cfg = *cfg;
            cfg.validate()?;
            let seed = cfg.train.seed;
            let mut vae = Vae::<f32>::new(
                cfg.model.clone(),
                &mut rand_pcg::Pcg64Mcg::seed_from_u64(seed),
            );
            if cfg.train.pseudo_init == PseudoInit::Data {
                pseudo_inputs_from_data(&mut vae, train, seed)?;
            }
            let adam = cfg.train.adam_for(&vae);
            let state = TrainState {
                epoch: 0,
                adam_t: 0,
                data_rng: rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ DATA_SALT),
                noise_rng: rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ NOISE_SALT),
                history: Vec::new(),
            };
            Ok((cfg, vae, adam, state))
        }
        Start::Resume(ck, epochs) => {
            let mut cfg = ck.config;
            if let Some(e) = epochs {
                cfg.train.epochs = e;
                // Checked before anything is saved: a config that every later load would refuse must never
                // reach a checkpoint.
                cfg.validate()?;
                if e < ck.state.epoch {
                    return Err(Error::Config(format!(
                        "--epochs {e} is fewer than the {} epochs this run has completed: pass more to train further",
                        ck.state.epoch
                    )));
                }
            }
            Ok((cfg, ck.vae, ck.adam, ck.state))
        }
    }
}

/// `--pseudo-init data` needs a distinct training item for each of the `k` pseudo-inputs.
fn enough_for_pseudo_inputs(k: usize, items: usize) -> Result<()> {
    if items < k {
        return Err(Error::Config(format!(
            "--pseudo-init data starts each of the {k} pseudo-inputs on a different training item, and there are {items}: lower --prior-components or use --pseudo-init random"
        )));
    }
    Ok(())
}

/// Starts a VampPrior's pseudo-inputs on K distinct training items drawn with the run's seed (intensities, before
/// any dynamic binarisation), plus a little noise.
fn pseudo_inputs_from_data(vae: &mut Vae<f32>, train: &Dataset, seed: u64) -> Result<()> {
    let Some(vamp) = vae.vamp() else {
        return Ok(());
    };
    let (k, d) = (vamp.components(), vamp.input);
    enough_for_pseudo_inputs(k, train.len())?;
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ PSEUDO_SALT);
    let idx = rand::seq::index::sample(&mut rng, train.len(), k).into_vec();
    let mut items = vec![0f32; k * d];
    let copy = Batcher {
        batch_size: k,
        binarize: Binarize::None,
        flip: false,
    };
    copy.fill(train, &idx, &mut rng, &mut items);
    vae.init_pseudo_inputs_from(&items, &mut rng);
    Ok(())
}

/// The writer's files before the first step: config.json as the run now continues (a resume may change its
/// epochs; a damaged or foreign one is replaced, since the checkpoint carries the config that counts), the
/// initial weights as a checkpoint (so a run stopped in its first epoch can be resumed and read), and a check
/// that the next checkpoint has room.
fn publish_start(
    run_dir: &Path,
    cfg: &RunConfig,
    vae: &Vae<f32>,
    adam: &Adam<f32>,
    state: &TrainState,
) -> Result<()> {
    let save_failed = |e| save_error(run_dir, e);
    let json = serde_json::to_string_pretty(cfg).map_err(|e| Error::Config(e.to_string()))?;
    crate::fsutil::write_atomic(&run_dir.join("config.json"), json.as_bytes())
        .map_err(save_failed)?;
    if state.epoch == 0 && !run_dir.join(checkpoint::CHECKPOINT).exists() {
        checkpoint::save(run_dir, cfg, &vae.params, adam, state).map_err(save_failed)?;
    }
    checkpoint::check_room_for_next(run_dir).map_err(save_failed)
}

/// The settings that keep a run from diverging: a FactorVAE's discriminator has its own learning rate, which
/// `--clip-grad-norm` does not reach.
fn divergence_fix(t: &TrainConfig) -> &'static str {
    if t.factor_vae.is_some() {
        "a smaller --lr or --discriminator-lr, or with --clip-grad-norm (which clips the VAE's gradient, not the discriminator's)"
    } else {
        "a smaller --lr or with --clip-grad-norm"
    }
}

/// One optimiser step on the gradient in `vae.params.grad`: scaled to the batch mean if asked, clipped, then
/// Adam. FactorVAE's discriminator has its own loss, a mean already, and its own optimiser group, so the scaling
/// and clipping touch the VAE's weights only. `Err` says what diverged.
fn update(
    t: &TrainConfig,
    vae: &mut Vae<f32>,
    adam: &mut Adam<f32>,
    lr: f64,
    rows: usize,
) -> std::result::Result<(), String> {
    let own = vae.discriminator_start().unwrap_or(vae.params.len());
    if t.loss_reduction == Reduction::Mean {
        // PyTorch's default: the gradient of the per-image mean, so clipping and ε see that scale.
        let s = 1.0 / rows as f32;
        vae.params.grad[..own].iter_mut().for_each(|g| *g *= s);
    }
    if let Some(max) = t.clip_grad_norm {
        let norm = crate::core::optim::clip_grad_norm(&mut vae.params.grad[..own], max);
        if !norm.is_finite() {
            return Err(format!("the gradient norm became {norm}"));
        }
    }
    adam.step(&mut vae.params, lr);
    Ok(())
}

/// FactorVAE's discriminator over an epoch: loss and accuracy summed over steps, TC over images.
#[derive(Debug, Default)]
struct DiscriminatorTally {
    sum: metrics::DiscriminatorMetrics,
    steps: usize,
    images: usize,
}

impl DiscriminatorTally {
    fn add(&mut self, d: &crate::model::factor::DiscriminatorStats, rows: usize) {
        self.sum.loss += d.loss;
        self.sum.accuracy += d.accuracy;
        self.sum.total_correlation += d.total_correlation;
        self.steps += 1;
        self.images += rows;
    }

    /// Mean loss and accuracy per step and TC per image; `None` when the discriminator never trained.
    fn mean(&self) -> Option<metrics::DiscriminatorMetrics> {
        (self.steps > 0).then(|| metrics::DiscriminatorMetrics {
            loss: self.sum.loss / self.steps as f64,
            accuracy: self.sum.accuracy / self.steps as f64,
            total_correlation: self.sum.total_correlation / self.images as f64,
        })
    }
}

/// The epoch's checkpoint and metrics.csv; a failure says which checkpoint is kept (this epoch's may have been
/// published before metrics.csv failed).
fn save_epoch(
    run_dir: &Path,
    cfg: &RunConfig,
    vae: &Vae<f32>,
    adam: &Adam<f32>,
    state: &TrainState,
) -> Result<()> {
    checkpoint::save(run_dir, cfg, &vae.params, adam, state)
        .and_then(|()| metrics::write_csv(&run_dir.join("metrics.csv"), &state.history))
        .map_err(|e| save_error(run_dir, e))
}

/// A failed write of the run's files, saying which checkpoint is kept.
fn save_error(run_dir: &Path, e: Error) -> Error {
    Error::Save {
        kept: checkpoint::newest_epoch(run_dir),
        dir: run_dir.to_path_buf(),
        source: Box::new(e),
    }
}

/// A batch's gradient computed in `shards` fixed parts of its rows and summed in their order, each rank taking
/// its consecutive share of the parts: every rank count that divides the shard count sums the same numbers in
/// the same order, so the weights do not depend on it.
struct Sharded {
    shards: usize,
    samples: usize,
    /// The whole batch's draws, as one process draws them.
    eps: Vec<f32>,
    /// This rank's parts' gradients, then every rank's.
    mine: Vec<f32>,
    all: Vec<f32>,
    /// Per part: recon, kl, iwae, images, and whether this rank caught a signal.
    mine_stats: Vec<f64>,
    all_stats: Vec<f64>,
    /// Time spent in the gathers this epoch.
    gather: std::time::Duration,
}

/// Numbers per part in [`Sharded`]'s statistics.
const PART_STATS: usize = 5;

impl Sharded {
    fn new(vae: &Vae<f32>, t: &TrainConfig, batch: usize) -> Self {
        let per = t.shards / dist::size();
        let p = vae.params.len();
        Sharded {
            shards: t.shards,
            samples: t.samples,
            eps: vec![0.0; batch * t.samples * vae.noise_dim()],
            mine: vec![0.0; per * p],
            all: vec![0.0; t.shards * p],
            mine_stats: vec![0.0; per * PART_STATS],
            all_stats: vec![0.0; t.shards * PART_STATS],
            gather: std::time::Duration::ZERO,
        }
    }

    /// The gradient of the batch `x` (items `idx`) into `vae.params.grad` and its statistics, on every rank;
    /// a signal caught by any rank stops all of them here, before the step is taken.
    fn step(
        &mut self,
        vae: &mut Vae<f32>,
        x: &[f32],
        idx: &[usize],
        splits: &Splits,
        objective: &crate::model::Objective,
        ws: &mut crate::model::Workspace<f32>,
    ) -> (BatchStats, Option<i32>) {
        // Every latent layer's noise per draw, split by image like the batch.
        let (rows, d, zd) = (idx.len(), vae.config.input_dim(), vae.noise_dim());
        let p = vae.params.len();
        let per = self.shards / dist::size();
        let bound = |s: usize| s * rows / self.shards;
        let caught = interrupt::received();
        for k in 0..per {
            let s = dist::rank() * per + k;
            let (a, b) = (bound(s), bound(s + 1));
            let r = b - a;
            let grad = &mut self.mine[k * p..(k + 1) * p];
            let stats = &mut self.mine_stats[k * PART_STATS..(k + 1) * PART_STATS];
            stats[4] = caught.map_or(0.0, |c| c as f64);
            if r == 0 {
                grad.fill(0.0);
                stats[..4].fill(0.0);
                continue;
            }
            for (l, &i) in ws.labels.iter_mut().zip(&idx[a..b]) {
                *l = splits.train.label(i);
            }
            let e = self.samples * zd;
            ws.eps[..r * e].copy_from_slice(&self.eps[a * e..b * e]);
            let st = vae.loss_and_grad(&x[a * d..b * d], r, objective, ws);
            grad.copy_from_slice(&vae.params.grad);
            stats[..4].copy_from_slice(&[st.recon, st.kl, st.iwae, st.n as f64]);
        }
        let t = Instant::now();
        dist::all_gather(&self.mine, &mut self.all);
        dist::all_gather(&self.mine_stats, &mut self.all_stats);
        self.gather += t.elapsed();
        let g = &mut vae.params.grad;
        g.copy_from_slice(&self.all[..p]);
        for part in self.all[p..].chunks_exact(p) {
            g.iter_mut().zip(part).for_each(|(g, v)| *g += v);
        }
        let mut st = BatchStats::default();
        let mut stop = None;
        for s in self.all_stats.chunks_exact(PART_STATS) {
            st.add(BatchStats {
                recon: s[0],
                kl: s[1],
                iwae: s[2],
                n: s[3] as usize,
            });
            if s[4] != 0.0 {
                stop = Some(s[4] as i32);
            }
        }
        (st, stop)
    }
}

/// The objective of one step: KL warm-up scales β by the fraction of warm-up epochs done (`progress` counts
/// epochs, fractional within one); capacity grows with the optimiser steps taken; β-TC-VAE's q(z) averages over
/// the `train_items` of the training split.
pub fn step_objective(
    t: &TrainConfig,
    progress: f64,
    steps_done: u64,
    train_items: usize,
) -> Objective {
    let warm = if t.warmup_epochs > 0 {
        (progress / t.warmup_epochs as f64).min(1.0)
    } else {
        1.0
    };
    Objective {
        estimator: t.objective,
        beta: t.beta * warm,
        capacity: t.capacity.map(|c| {
            let frac = (steps_done as f64 / c.steps as f64).min(1.0);
            (c.gamma, c.max * frac)
        }),
        free_bits: t.free_bits,
        groups: t.groups,
        ciwae_beta: t.ciwae_beta.unwrap_or(0.0),
        dip: t.dip,
        factor_vae: t.factor_vae.map(|f| f.gamma),
        tc: t.tc.map(|tc| crate::model::tc::Tc {
            dataset_size: train_items,
            ..tc
        }),
    }
}

/// An epoch's one-line summary, as `elbo train` prints it.
pub fn epoch_line(cfg: &RunConfig, row: &EpochMetrics, gathered: Option<f64>) -> String {
    let (epoch, epochs, test) = (row.epoch, cfg.train.epochs, row.test);
    let mut v = row.validation.map_or(String::new(), |v: SplitMetrics| {
        format!(" | val -ELBO {:.2}", v.neg_elbo)
    });
    if let Some(b) = row.train_neg_iwae {
        let t = &cfg.train;
        let bound = match t.objective {
            Estimator::Miwae => format!("MIWAE(M={}, K={})", t.groups, t.samples / t.groups.max(1)),
            Estimator::Piwae => format!(
                "IWAE(k={}) of PIWAE(M={}, K={})",
                t.samples,
                t.groups,
                t.samples / t.groups.max(1)
            ),
            Estimator::Ciwae => {
                format!("CIWAE(β={}, K={})", t.ciwae_beta.unwrap_or(0.0), t.samples)
            }
            _ => format!("IWAE(k={})", t.samples),
        };
        v.push_str(&format!(" | train -{bound} {b:.2}"));
    }
    if let Some(d) = row.discriminator {
        v.push_str(&format!(
            " | discriminator loss {:.3}, accuracy {:.2}, TC {:.2}",
            d.loss, d.accuracy, d.total_correlation
        ));
    }
    if let Some(g) = gathered {
        v.push_str(&format!(" | all-gather {g:.2}s"));
    }
    let seconds = row.seconds;
    if cfg.model.is_variational() {
        format!(
            "epoch {epoch:>3}/{epochs} | train -ELBO {:.2} (recon {:.2}, KL {:.2}) | test -ELBO {:.2} (recon {:.2}, KL {:.2}){v} | {seconds:.2}s",
            row.train.neg_elbo, row.train.recon, row.train.kl, test.neg_elbo, test.recon, test.kl,
        )
    } else {
        // An autoencoder has no KL term and no ELBO: its loss is the reconstruction term alone.
        format!(
            "epoch {epoch:>3}/{epochs} | train recon {:.2} | test recon {:.2}{v} | {seconds:.2}s",
            row.train.recon, test.recon,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While training, the first weight and Adam's moments for it are stored input-major; a checkpoint written
    /// then holds them in PyTorch's layout, exactly, and training's layout is back afterwards.
    #[test]
    fn checkpoints_keep_pytorchs_layout_while_training_keeps_its_own() {
        let cfg = RunConfig {
            model: crate::model::ModelConfig::pytorch_example(),
            train: TrainConfig::default(),
            data: Default::default(),
        };
        let mut vae = Vae::<f32>::new(cfg.model.clone(), &mut rand_pcg::Pcg64Mcg::seed_from_u64(1));
        let mut adam = Adam::new(vae.params.len(), 1e-8);
        for (i, (m, v)) in adam.m.iter_mut().zip(adam.v.iter_mut()).enumerate() {
            (*m, *v) = (i as f32, 2.0 * i as f32);
        }
        let (weights, m, v) = (vae.params.data.clone(), adam.m.clone(), adam.v.clone());
        sparse_layout(&mut vae, &mut adam, true);
        assert_ne!(
            vae.params.data, weights,
            "the first weight is stored input-major"
        );
        let training = (vae.params.data.clone(), adam.m.clone());
        let state = TrainState {
            epoch: 1,
            adam_t: 1,
            data_rng: rand_pcg::Pcg64Mcg::seed_from_u64(2),
            noise_rng: rand_pcg::Pcg64Mcg::seed_from_u64(3),
            history: vec![],
        };
        let bytes = saved_layout(&mut vae, &mut adam, |vae, adam| {
            checkpoint::to_bytes(&cfg, &vae.params, adam, &state).unwrap()
        });
        let ck = checkpoint::from_bytes(&bytes, Path::new("c")).unwrap();
        assert_eq!(ck.vae.params.data, weights);
        assert_eq!((ck.adam.m, ck.adam.v), (m, v));
        assert_eq!((vae.params.data.clone(), adam.m.clone()), training);
    }

    #[test]
    fn two_spellings_of_one_number_are_found() {
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            same_number(&c(&["0", "1", "10", "1.0", "cat"])),
            Some(("1", "1.0"))
        );
        assert_eq!(same_number(&c(&["0", "1", "10", "2", "cat"])), None);
    }

    /// `--pseudo-init data`: each pseudo-input starts within a little noise of a different training item, the
    /// same ones for the same seed.
    #[test]
    fn pseudo_inputs_start_on_distinct_training_items() {
        let shape = ItemShape {
            height: 28,
            width: 28,
            channels: 1,
        };
        let n = 12;
        let values: Vec<u8> = (0..n * 784)
            .map(|i| ((i * 37 + i / 784 * 101) % 256) as u8)
            .collect();
        let train = Dataset::from_bytes(shape, values.clone(), None).unwrap();
        let model = crate::model::ModelConfig {
            prior: crate::model::config::PriorSpec::Vamp { components: 5 },
            hidden: vec![16],
            ..crate::model::ModelConfig::pytorch_example()
        };
        let start = |seed| {
            let mut vae = Vae::<f32>::new(model.clone(), &mut rand_pcg::Pcg64Mcg::seed_from_u64(1));
            pseudo_inputs_from_data(&mut vae, &train, seed).unwrap();
            let v = vae.vamp().unwrap();
            vae.params.data[v.pseudo..v.pseudo + v.components() * v.input].to_vec()
        };
        let u = start(3);
        let mut matched = Vec::new();
        for row in u.chunks_exact(784) {
            let item = (0..n).find(|&i| {
                row.iter()
                    .zip(&values[i * 784..(i + 1) * 784])
                    .all(|(&u, &x)| (u - x as f32 / 255.0).abs() < 0.06)
            });
            let item = item.expect("every pseudo-input is near a training item");
            assert!(!matched.contains(&item), "item {item} twice");
            matched.push(item);
        }
        assert!(
            u.chunks_exact(784)
                .next()
                .unwrap()
                .iter()
                .zip(&values)
                .any(|(&u, &x)| u != x as f32 / 255.0)
        );
        assert_eq!(u, start(3));
        assert_ne!(u, start(4));
        let few = Dataset::from_bytes(shape, values[..4 * 784].to_vec(), None).unwrap();
        let mut vae = Vae::<f32>::new(model, &mut rand_pcg::Pcg64Mcg::seed_from_u64(1));
        let e = pseudo_inputs_from_data(&mut vae, &few, 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("5 pseudo-inputs") && e.contains("there are 4"),
            "{e}"
        );
    }

    #[test]
    fn an_overflowed_optimiser_state_is_not_savable() {
        let mut params = crate::core::Params::<f32> {
            data: vec![0.5; 4],
            grad: vec![0.0; 4],
            ..Default::default()
        };
        let mut adam = TrainConfig::default().adam(4);
        assert!(savable(&params, &adam));
        adam.v[2] = f32::INFINITY;
        assert!(
            !savable(&params, &adam),
            "finite weights, infinite second moment"
        );
        adam.v[2] = 0.0;
        params.data[0] = f32::NAN;
        assert!(!savable(&params, &adam));
    }
}
