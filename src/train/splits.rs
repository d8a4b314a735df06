//! A run's data: read as stored, checked against the model, split and made ready as the run's config says, and
//! new items read as a trained run sees its training data.

use super::config::{DataInfo, RunConfig, TrainConfig};
use crate::data::batch::binarize_static;
use crate::data::{
    self, Binarize, Dataset, ItemShape, Kind, Loaded, load_dataset, resolve_data_dir,
};
use crate::error::{Error, Result};
use crate::model::config::PriorSpec;
use crate::model::vamp::PseudoInit;
use rand::SeedableRng;
use std::path::Path;

/// Salts of the run's seed for the test split's (and validation's) one binarisation, shared by training's
/// per-epoch evaluation, and for a static binarisation of the training split.
pub(super) const TEST_SALT: u64 = 0x7e57_0000;
const STATIC_SALT: u64 = 0x57a7_1c00;

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
    let fingerprint = same_data_as_trained(cfg, &name, &mut train, &mut test)?;
    let factors = same_factors_as_trained(cfg, &name, &train, &test)?;
    fits_model(cfg, &name, &train, &test)?;
    if let Some(n) = t.limit {
        // Said when the run is made, not again by every command that reads it.
        let new_run = cfg.data.fingerprint.is_none();
        let whole = train
            .factors
            .as_deref()
            .filter(|_| new_run)
            .map(distinct_values);
        train = train.truncated(n);
        if let (Some(whole), Some(kept)) = (whole, train.factors.as_deref()) {
            say_factors_left_out(n, &whole, kept);
        }
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
    record_facts(cfg, &name, fingerprint, &train, columns);
    if cfg.data.factors.is_none() {
        cfg.data.factors = factors;
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
    binarize_splits(&t, &mut train, validation.as_mut(), &mut test)?;
    Ok(Splits {
        train,
        validation,
        test,
    })
}

/// The data's fingerprint, refused when a saved run was trained on other data. A saved run's labels index its
/// saved class list (a table run from before numeric labels sorted as numbers lists them in text order), so the
/// splits are relabelled by it first; data whose classes it lacks fail the fingerprint.
fn same_data_as_trained(
    cfg: &RunConfig,
    name: &str,
    train: &mut Dataset,
    test: &mut Dataset,
) -> Result<String> {
    if !cfg.data.classes.is_empty() {
        for ds in [&mut *train, &mut *test] {
            if ds.is_labelled() {
                let _ = ds.relabel(&cfg.data.classes);
            }
        }
    }
    let fingerprint = fingerprint(train, test);
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
    Ok(fingerprint)
}

/// md5 of the factors of both splits (names, sizes, classes, values), or nothing for data without factors.
fn factors_fingerprint(train: &Dataset, test: &Dataset) -> Option<String> {
    use md5::Digest;
    let mut h = md5::Md5::new();
    for ds in [train, test] {
        let f = ds.factors.as_deref()?;
        h.update(f.names.join("\n"));
        h.update(
            f.sizes
                .iter()
                .flat_map(|s| (*s as u64).to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        f.classes
            .chunks(1 << 14)
            .for_each(|c| h.update(c.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()));
        f.values
            .chunks(1 << 14)
            .for_each(|c| h.update(c.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()));
    }
    Some(format!("{:x}", h.finalize()))
}

/// The factors' fingerprint, refused when a saved run recorded other factors: the images can stay while a factor
/// column is shuffled or two are swapped, and every metric would then score against factors the run never saw.
/// Runs saved before factors were fingerprinted have none to compare.
fn same_factors_as_trained(
    cfg: &RunConfig,
    name: &str,
    train: &Dataset,
    test: &Dataset,
) -> Result<Option<String>> {
    let now = factors_fingerprint(train, test);
    match &cfg.data.factors {
        Some(saved) if now.as_ref() != Some(saved) => Err(Error::Config(format!(
            "{name}: its factors (latents_classes, latents_values) have changed since this run was trained: scores against them would not describe this run; train a new run on the data as it is now"
        ))),
        _ => Ok(now),
    }
}

/// How many distinct values each factor takes over the items of `f`.
fn distinct_values(f: &data::factors::Factors) -> Vec<usize> {
    (0..f.count())
        .map(|j| {
            (0..f.len())
                .map(|i| f.row(i)[j])
                .collect::<std::collections::HashSet<u32>>()
                .len()
        })
        .collect()
}

/// Says which factors `--limit n` cut down: it keeps the first items in the file's order, and data sorted by its
/// factors (dSprites' file, `make-dsprites`' output) then trains on one shape, or one scale, only.
fn say_factors_left_out(n: usize, whole: &[usize], kept: &data::factors::Factors) {
    let now = distinct_values(kept);
    let cut: Vec<String> = kept
        .names
        .iter()
        .zip(whole.iter().zip(&now))
        .filter(|(_, (w, k))| k < w)
        .map(|(name, (w, k))| format!("{name} {k} of {w}"))
        .collect();
    if !cut.is_empty() {
        crate::notes::say!(
            "elbo: --limit {n} keeps the training split's first {n} items in the file's order, and they hold fewer values of some factors than the whole split ({}), so the model will not see the others; a file sorted by its factors (dSprites' file, make-dsprites' output) keeps only its first values under a limit, and make-dsprites --subsample N draws fewer items from the whole grid instead",
            cut.join(", ")
        );
    }
}

/// Refuses items of another shape than the model's, and data a conditional model cannot learn from: no labels,
/// a label outside its classes, or a class no training item has.
fn fits_model(cfg: &RunConfig, name: &str, train: &Dataset, test: &Dataset) -> Result<()> {
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
    if !m.is_conditional() {
        return Ok(());
    }
    let k = m.classes;
    if !train.is_labelled() || !test.is_labelled() {
        return Err(Error::Config(format!(
            "{name} is unlabelled: a conditional model needs class labels (class folders, a y array or --label-column)"
        )));
    }
    let found = train
        .labels
        .iter()
        .chain(&test.labels)
        .flatten()
        .find(|&&l| l as usize >= k);
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
    Ok(())
}

/// Records in `cfg.data` what a run keeps of its data: the fingerprint, and for a new run (or one saved before
/// it kept classes) the kind, class names and columns.
fn record_facts(
    cfg: &mut RunConfig,
    name: &str,
    fingerprint: String,
    train: &Dataset,
    columns: Vec<String>,
) {
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
}

/// Binarises evaluation data once, with fixed seeds, so every epoch and every command scores the same targets;
/// and the training split too when binarisation is static.
fn binarize_splits(
    t: &TrainConfig,
    train: &mut Dataset,
    validation: Option<&mut Dataset>,
    test: &mut Dataset,
) -> Result<()> {
    if t.binarize == Binarize::None {
        return Ok(());
    }
    if train.kind == Kind::Table {
        return Err(Error::Config(
            "--binarize draws pixels from intensities in [0, 1]; standardised table features have none".into(),
        ));
    }
    let seeded = |salt: u64| rand_pcg::Pcg64Mcg::seed_from_u64(t.seed ^ salt);
    binarize_static(test, &mut seeded(TEST_SALT));
    if let Some(v) = validation {
        binarize_static(v, &mut seeded(TEST_SALT ^ 1));
    }
    if t.binarize == Binarize::Static {
        binarize_static(train, &mut seeded(STATIC_SALT));
    }
    Ok(())
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

/// `--pseudo-init data` needs a distinct training item for each of the `k` pseudo-inputs.
pub(super) fn enough_for_pseudo_inputs(k: usize, items: usize) -> Result<()> {
    if items < k {
        return Err(Error::Config(format!(
            "--pseudo-init data starts each of the {k} pseudo-inputs on a different training item, and there are {items}: lower --prior-components or use --pseudo-init random"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_spellings_of_one_number_are_found() {
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            same_number(&c(&["0", "1", "10", "1.0", "cat"])),
            Some(("1", "1.0"))
        );
        assert_eq!(same_number(&c(&["0", "1", "10", "2", "cat"])), None);
    }
}
