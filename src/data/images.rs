//! Folders of images, and zip or tar(.gz) archives of such folders, as datasets: the conventions of
//! torchvision's `ImageFolder` and Keras's `image_dataset_from_directory`.
//!
//! - Files are found recursively and read in sorted order of their paths, so a dataset is stable.
//! - `train/` beside `test/` (or `val/`) are the splits; otherwise the caller holds out a fraction.
//! - The subfolders below a split are the classes (sorted names); a split without subfolders is unlabelled.
//! - One folder wrapping everything (`img_align_celeba/…` inside `img_align_celeba.zip`) is looked through.
//! - Names are the files' own, escaped where they are not UTF-8 ([`escape_name`]), alike in folders and archives;
//!   links inside an archive are read as the files they lead to (see `archive`).
//!
//! Decoding, cropping and resizing run on all cores; archives are read entry by entry, never unpacked to disk.

mod archive;

use super::dataset::{Dataset, ItemShape};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// File endings read as images (case-insensitive), as `ImageFolder`'s list.
const EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"];
/// Largest image side decoded: a larger one is refused before its pixels are allocated (decompression bombs).
pub const MAX_SIDE: u32 = 16_384;
/// Largest decoded image in bytes.
const MAX_DECODED: u64 = 512 << 20;
/// Largest encoded image file read.
const MAX_FILE: u64 = 256 << 20;
/// Entries decoded per parallel round when reading an archive sequentially.
const ROUND: usize = 256;
/// Compressed bytes held per round, so a few huge entries cannot fill memory.
const ROUND_BYTES: u64 = 256 << 20;

/// How images become items.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageOptions {
    /// Output height and width: the shorter side is resized to fit, then the centre cropped (torchvision's
    /// `Resize` + `CenterCrop`). `None` keeps the images' own size, which must then be the same for all.
    pub size: Option<(usize, usize)>,
    /// A centre square of this side is cut from each image first (the CelebA recipe's 148).
    pub crop: Option<usize>,
    /// 1 (grey) or 3 (RGB); `None`: 3 if any image has colour, else 1.
    pub channels: Option<usize>,
    /// Skip files that do not decode (and say how many) instead of failing.
    pub skip_bad: bool,
}

/// The images found: one set to split, or given train and test splits.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// No `train/` and `test/` folders: the caller holds out a test fraction.
    One(Dataset),
    /// The `train/` and `test/` (or `val/`) folders.
    Split(Dataset, Dataset),
}

/// Whether `path` names an archive elbo reads as an image folder.
pub fn is_archive(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    [".zip", ".tar", ".tar.gz", ".tgz"]
        .iter()
        .any(|e| name.ends_with(e))
}

/// Whether `path` names one image file.
pub fn is_image_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| is_image_name(&n.to_string_lossy()))
}

fn is_image_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower
        .rsplit_once('.')
        .is_some_and(|(_, ext)| EXTENSIONS.contains(&ext))
}

/// An item's or class's name from the raw bytes of a file or folder name: text as it is, except that bytes that
/// are not UTF-8 become `\xff`, control characters `\x0a` (or `\u{85}`), and a backslash `\\`. Reversible,
/// so two names never merge into one (`bad\xff` and `bad\xfe` stay two classes), and always one printable line.
pub fn escape_name(raw: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() && (c as u32) < 0x80 => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn os_name(name: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    escape_name(name.as_bytes())
}

/// Where the bytes of an entry come from.
#[derive(Debug, Clone)]
enum Origin {
    File(PathBuf),
    /// Index into the archive's entries (zip) or its position in the stream (tar).
    Entry(usize),
}

/// An image file found, by its path below the root (components).
#[derive(Debug, Clone)]
struct Entry {
    parts: Vec<String>,
    origin: Origin,
}

impl Entry {
    fn name(&self) -> String {
        self.parts.join("/")
    }
}

/// Lists image files below `root`, following symbolic links but refusing loops, and the hidden files named like
/// images and hidden folders it left out.
fn walk(root: &Path) -> Result<(Vec<Entry>, Vec<String>)> {
    let mut out = Vec::new();
    let mut hidden = Vec::new();
    let mut seen = HashSet::new();
    let canon = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
    seen.insert(canon);
    walk_into(root, &mut Vec::new(), &mut seen, &mut out, &mut hidden)?;
    Ok((out, hidden))
}

/// Whether a file or folder name is one elbo never reads: hidden (`.name`, including macOS's `._name` copies)
/// or macOS's `__MACOSX` folder of them.
fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name == "__MACOSX"
}

/// One line counting the hidden entries left out (`names`: files named like images, and folders ending in `/`),
/// or none.
pub(crate) fn hidden_note(names: &[String]) -> Option<String> {
    let first = names.first()?;
    let more = if names.len() > 1 { ", …" } else { "" };
    let n = names.len();
    Some(format!(
        "left out {n} hidden {} ({first}{more}): elbo reads no name starting with '.', nor __MACOSX/",
        if n == 1 { "entry" } else { "entries" },
    ))
}

fn walk_into(
    dir: &Path,
    prefix: &mut Vec<String>,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<Entry>,
    hidden: &mut Vec<String>,
) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(dir, e))?;
    names.sort();
    for name in names {
        let name_s = os_name(&name);
        if is_hidden(&name_s) {
            let mut parts = prefix.clone();
            parts.push(name_s.clone());
            let path = dir.join(&name);
            if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                hidden.push(format!("{}/", parts.join("/")));
            } else if is_image_name(&name_s) {
                hidden.push(parts.join("/"));
            }
            continue;
        }
        let path = dir.join(&name);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.raw_os_error() == Some(40) => {
                return Err(Error::Config(format!(
                    "{}: a symbolic link loop (the link never reaches a file): remove or fix it",
                    path.display()
                )));
            }
            // A dangling link that is not an image is no concern; one that is, is a bad image.
            Err(_) if !is_image_name(&name_s) => continue,
            Err(e) => {
                return Err(match std::fs::read_link(&path) {
                    Ok(target) if e.kind() == std::io::ErrorKind::NotFound => {
                        Error::Config(format!(
                            "{}: a symbolic link to nothing ({} does not exist): remove or fix it",
                            path.display(),
                            target.display()
                        ))
                    }
                    _ => Error::io(&path, e),
                });
            }
        };
        if meta.is_dir() {
            let canon = std::fs::canonicalize(&path).map_err(|e| Error::io(&path, e))?;
            if !seen.insert(canon.clone()) {
                return Err(Error::Config(format!(
                    "{}: a symbolic link loop (it leads back to {}): remove the link",
                    path.display(),
                    canon.display()
                )));
            }
            prefix.push(name_s);
            walk_into(&path, prefix, seen, out, hidden)?;
            prefix.pop();
            seen.remove(&canon);
        } else if meta.is_file() && is_image_name(&name_s) {
            let mut parts = prefix.clone();
            parts.push(name_s);
            out.push(Entry {
                parts,
                origin: Origin::File(path),
            });
        }
    }
    Ok(())
}

/// Whether an entry at `parts` is an image to read: named like one, and in no hidden or `__MACOSX` folder.
fn keep_entry(parts: &[String]) -> bool {
    parts.last().is_some_and(|n| is_image_name(n)) && !parts.iter().any(|p| is_hidden(p))
}

fn bad_archive(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{}: not a readable archive: {e}", path.display()))
}

/// Splits and classes from the entries' paths; the result's entries are sorted.
struct Layout {
    /// (split name or "", class per entry, entries)
    splits: Vec<(String, Vec<Option<u32>>, Vec<Entry>)>,
    classes: Vec<String>,
    /// What was said about the set while it was read (see [`note`]).
    notes: Vec<String>,
}

/// Says `msg` now, and keeps it for the cache entry: a run that reads the decoded images from the cache says
/// it again, so a set that was used with a caveat (images skipped, a test split held out of a lone `train/`)
/// never looks clean on the second run.
fn note(notes: &mut Vec<String>, msg: String) {
    crate::notes::say!("elbo: {msg}");
    notes.push(msg);
}

/// The folders that hold a test split beside `train/`, in order of preference: the names torchvision's and
/// Kaggle's sets use (`train/` beside `validation/` would otherwise be read as two classes). Names match in any
/// case (GTSRB has `Train/` and `Test/`, Kaggle's sets `Training/` and `Testing/`).
const TEST_SPLITS: [&str; 5] = ["test", "testing", "val", "valid", "validation"];

/// The names of the training split's folder, in order of preference.
const TRAIN_SPLITS: [&str; 2] = ["train", "training"];

/// Whether `folder` is named as one of `names`, in any case.
fn named(folder: &str, names: &[&str]) -> bool {
    names.iter().any(|n| folder.eq_ignore_ascii_case(n))
}

/// How many single folders wrap every image (`img_align_celeba/` inside `img_align_celeba.zip`): they are
/// looked through, down to the last folder holding them all.
fn wrapper_depth(paths: &[&[String]]) -> usize {
    let mut depth = 0;
    // No paths would all agree at every depth.
    while !paths.is_empty()
        && paths.iter().all(|p| p.len() > depth + 1)
        && paths.iter().all(|p| p[depth] == paths[0][depth])
    {
        depth += 1;
    }
    depth
}

/// Where images' classes are read from their paths: below `depth` wrapping folders and, when the folders
/// there have `train/` beside `test/` (or `val/`, …), below the split folder. Training and `--input` both place
/// images with it, so a path names the same class wherever it is read.
struct ClassRoot {
    depth: usize,
    /// The training and test splits' folders as spelt on disk, in a split layout.
    splits: Option<(String, String)>,
    /// Other folders named as a test split, left out.
    unused: Vec<String>,
}

impl ClassRoot {
    fn at(paths: &[&[String]], depth: usize) -> ClassRoot {
        let tops: BTreeSet<&str> = paths
            .iter()
            .filter(|p| p.len() > depth + 1)
            .map(|p| p[depth].as_str())
            .collect();
        let in_order = |names: &[&str]| -> Vec<&str> {
            names
                .iter()
                .flat_map(|n| tops.iter().filter(|t| t.eq_ignore_ascii_case(n)))
                .copied()
                .collect()
        };
        let (train, held_out) = (in_order(&TRAIN_SPLITS), in_order(&TEST_SPLITS));
        match (train.split_first(), held_out.split_first()) {
            (Some((train, other_train)), Some((test, rest))) => ClassRoot {
                depth,
                splits: Some((train.to_string(), test.to_string())),
                unused: other_train
                    .iter()
                    .chain(rest)
                    .map(|s| s.to_string())
                    .collect(),
            },
            _ => ClassRoot {
                depth,
                splits: None,
                unused: Vec::new(),
            },
        }
    }

    /// The split an image lies in (0 for training or without splits, 1 for the test split) and its path below
    /// that split, or `None` for an image outside both splits of a split layout.
    fn place<'a>(&self, path: &'a [String]) -> Option<(usize, &'a [String])> {
        let below = path.get(self.depth..).unwrap_or_default();
        let Some((train, test)) = &self.splits else {
            return Some((0, below));
        };
        match below {
            [split, rest @ ..] if !rest.is_empty() && split == train => Some((0, rest)),
            [split, rest @ ..] if !rest.is_empty() && split == test => Some((1, rest)),
            _ => None,
        }
    }

    /// An image's class: the top folder below its split, as in `ImageFolder` (`a/b/x.png` is of class `a`);
    /// `None` for an image beside the class folders or outside the splits.
    fn class_of<'a>(&self, path: &'a [String]) -> Option<&'a str> {
        let (_, below) = self.place(path)?;
        (below.len() > 1).then(|| below[0].as_str())
    }

    /// [`ClassRoot::class_of`], and below the split folders training left out (`val/` beside `test/`) too: a
    /// folder read whole (`encode --input` of the training folder) has every image in a class folder classed.
    fn class_anywhere<'a>(&self, path: &'a [String]) -> Option<&'a str> {
        self.class_of(path)
            .or_else(|| match path.get(self.depth..)? {
                [split, class, _, ..] if self.unused.contains(split) => Some(class.as_str()),
                _ => None,
            })
    }
}

/// The class of each image named by `names` (paths below the folder or archive given, as [`load_flat`] names
/// them) by the rule training follows (`ClassRoot`), for a run that knows the classes `known`. A folder
/// wrapping every image is looked through as in training, unless only then would an image's class be one the
/// run does not know: a folder of new images of one class (`cats/` holding `cat/`, or `cat/` itself) is read
/// as that class, where training would have taken it for a wrapper.
pub fn classes_of(names: &[String], known: &[String]) -> Vec<Option<String>> {
    let paths: Vec<Vec<String>> = names
        .iter()
        .map(|n| n.split('/').map(str::to_string).collect())
        .collect();
    let paths: Vec<&[String]> = paths.iter().map(Vec::as_slice).collect();
    let known: HashSet<&str> = known.iter().map(String::as_str).collect();
    let classes_at = |depth: usize| -> Vec<Option<String>> {
        let root = ClassRoot::at(&paths, depth);
        paths
            .iter()
            .map(|p| root.class_anywhere(p).map(str::to_string))
            .collect()
    };
    // A split folder without its partner (MVTec AD's test/ given without train/) holds the class folders one
    // level down; looked at only where the folders themselves are not the run's classes.
    let below_split = |depth: usize| -> Vec<Option<String>> {
        paths
            .iter()
            .map(|p| match p.get(depth..)? {
                [split, class, _, ..] if is_split_name(split) => Some(class.clone()),
                _ => None,
            })
            .collect()
    };
    let deepest = wrapper_depth(&paths);
    let all_known = |cs: &Vec<Option<String>>| {
        cs.iter()
            .all(|c| c.as_deref().is_some_and(|c| known.contains(c)))
    };
    (0..=deepest)
        .rev()
        .map(classes_at)
        .find(all_known)
        .or_else(|| (0..=deepest).rev().map(below_split).find(all_known))
        .unwrap_or_else(|| classes_at(deepest))
}

/// Whether a folder is named as a training or test split (`train/`, `Test/`, `val/`, …).
fn is_split_name(folder: &str) -> bool {
    named(folder, &TRAIN_SPLITS) || named(folder, &TEST_SPLITS)
}

/// Says so when folders named as splits (`test/` and `val/` with no `train/` holding images beside them) are
/// about to be read as classes: the user laid out splits, and the model would learn their names as labels.
fn note_split_names_as_classes(
    paths: &[&[String]],
    depth: usize,
    root: &Path,
    notes: &mut Vec<String>,
) {
    let tops: BTreeSet<&str> = paths
        .iter()
        .filter(|p| p.len() > depth + 1)
        .map(|p| p[depth].as_str())
        .collect();
    let splitlike: Vec<String> = tops
        .iter()
        .filter(|t| named(t, &TRAIN_SPLITS) || named(t, &TEST_SPLITS))
        .map(|t| format!("{t}/"))
        .collect();
    if !splitlike.is_empty() {
        note(
            notes,
            format!(
                "{}: {} read as class folders: a split needs a train/ (or training/) folder of images beside a test/, testing/, val/, valid/ or validation/ one",
                root.display(),
                splitlike.join(", ")
            ),
        );
    }
}

/// Where the images are: which split each belongs to (and which are left out), then [`label_splits`].
fn layout(
    mut entries: Vec<Entry>,
    root: &Path,
    flat: bool,
    mut notes: Vec<String>,
) -> Result<Layout> {
    if entries.is_empty() {
        return Err(Error::Config(format!(
            "{}: no images found (looked for {} files, recursively)",
            root.display(),
            EXTENSIONS.join(", ")
        )));
    }
    entries.sort_by(|a, b| a.parts.cmp(&b.parts));
    if flat {
        // Every image, named by its whole path below the root: no splits, no classes. In a split layout
        // (MVTec AD's train/, test/ and ground_truth/ masks) only the splits' images are items, as in training.
        let entries = within_splits(entries, root, &mut notes);
        let n = entries.len();
        return Ok(Layout {
            splits: vec![(String::new(), vec![None; n], entries)],
            classes: Vec::new(),
            notes,
        });
    }
    let paths: Vec<&[String]> = entries.iter().map(|e| e.parts.as_slice()).collect();
    let depth = wrapper_depth(&paths);
    // A lone split folder (train/ beside a missing or empty test/) is used whole and split like any other set;
    // say so, since the user laid out splits and may have expected theirs.
    if let Some(w) = paths[0][..depth]
        .iter()
        .find(|w| named(w, &TRAIN_SPLITS) || named(w, &TEST_SPLITS))
    {
        note(
            &mut notes,
            format!(
                "{}: only {w}/ holds images (no other split folder beside it has any), so a test split is held out of it (--test-fraction)",
                root.display()
            ),
        );
    }
    let class_root = ClassRoot::at(&paths, depth);
    let split_names: Vec<String> = match &class_root.splits {
        Some((train, test)) => vec![train.clone(), test.clone()],
        None => vec![String::new()],
    };
    if class_root.splits.is_none() {
        note_split_names_as_classes(&paths, depth, root, &mut notes);
    }
    let mut groups: Vec<(String, Vec<Entry>)> = split_names
        .iter()
        .map(|s| (s.clone(), Vec::new()))
        .collect();
    let mut ignored = 0;
    for e in &entries {
        let Some((k, below)) = class_root.place(&e.parts) else {
            ignored += 1;
            continue;
        };
        groups[k].1.push(Entry {
            parts: below.to_vec(),
            origin: e.origin.clone(),
        });
    }
    if let (true, Some((train, test))) = (ignored > 0, &class_root.splits) {
        let unused = if class_root.unused.is_empty() {
            String::new()
        } else {
            format!(
                " ({} too: {train}/ is the training split and {test}/ the test split)",
                class_root
                    .unused
                    .iter()
                    .map(|u| format!("{u}/"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        note(
            &mut notes,
            format!(
                "{}: {ignored} images outside {train}/ and {test}/ are not used{unused}",
                root.display()
            ),
        );
    }
    label_splits(groups, root, notes)
}

/// The entries of a folder read whole (`--input`) that lie in a split: in a split layout the images outside
/// `train/`, `test/` and the other split folders (`ground_truth/` masks beside MVTec AD's splits) are not items
/// of the set, so they are left out, said in a line naming their folders.
fn within_splits(entries: Vec<Entry>, root: &Path, notes: &mut Vec<String>) -> Vec<Entry> {
    let paths: Vec<&[String]> = entries.iter().map(|e| e.parts.as_slice()).collect();
    let depth = wrapper_depth(&paths);
    let class_root = ClassRoot::at(&paths, depth);
    let top = |e: &Entry| e.parts.get(depth).cloned().unwrap_or_default();
    let in_folder = |e: &Entry| e.parts.len() > depth + 1;
    // The split folders there are: train/ and test/, or a test/ (or val/, …) without its partner.
    let splits: Vec<String> = match &class_root.splits {
        Some((train, test)) => vec![train.clone(), test.clone()],
        None => entries
            .iter()
            .filter(|e| in_folder(e) && is_split_name(&top(e)))
            .map(top)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    if splits.is_empty() {
        return entries;
    }
    let (kept, out): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(|e| {
        in_folder(e) && (splits.contains(&top(e)) || class_root.unused.contains(&top(e)))
    });
    if !out.is_empty() {
        let folders: BTreeSet<String> = out
            .iter()
            .map(|e| match e.parts.len() > depth + 1 {
                true => format!("{}/", top(e)),
                false => "beside them".into(),
            })
            .collect();
        note(
            notes,
            format!(
                "{}: {} image{} outside {} ({}) {} not read: in a folder of splits only the splits hold items; give that folder itself to read them",
                root.display(),
                out.len(),
                if out.len() == 1 { "" } else { "s" },
                splits
                    .iter()
                    .map(|s| format!("{s}/"))
                    .collect::<Vec<_>>()
                    .join(" and "),
                folders.into_iter().collect::<Vec<_>>().join(", "),
                if out.len() == 1 { "is" } else { "are" },
            ),
        );
    }
    kept
}

/// Each split's entries (paths starting at the class folders) with their classes: the training split's class
/// folders, then any only a held-out split has, said in a line.
fn label_splits(
    groups: Vec<(String, Vec<Entry>)>,
    root: &Path,
    mut notes: Vec<String>,
) -> Result<Layout> {
    let below = ClassRoot {
        depth: 0,
        splits: None,
        unused: Vec::new(),
    };
    let mut classes: Vec<String> = groups[0]
        .1
        .iter()
        .filter_map(|e| below.class_of(&e.parts))
        .map(str::to_string)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let labelled = !classes.is_empty();
    if !labelled && groups.len() > 1 {
        // Class folders in the held-out split alone label nothing: the training split decides the classes.
        let held_out: BTreeSet<&str> = groups[1..]
            .iter()
            .flat_map(|(_, list)| list.iter().filter_map(|e| below.class_of(&e.parts)))
            .collect();
        if !held_out.is_empty() {
            note(
                &mut notes,
                format!(
                    "{}: {}/ has class folders ({}) but {}/ has none, so the set is read without classes",
                    root.display(),
                    groups[1].0,
                    held_out.into_iter().collect::<Vec<_>>().join(", "),
                    groups[0].0
                ),
            );
        }
    }
    if labelled {
        // A class only the test split has (MVTec's test/broken beside train/good) follows the training classes,
        // so their indices do not move; an unconditional model scores it like any other, a conditional one is
        // refused by the trainer, which knows that no training item teaches it the class.
        let extra: BTreeSet<String> = groups[1..]
            .iter()
            .flat_map(|(_, list)| list.iter().filter_map(|e| below.class_of(&e.parts)))
            .filter(|c| !classes.iter().any(|k| k == c))
            .map(str::to_string)
            .collect();
        if !extra.is_empty() {
            let test = &groups[1].0;
            note(
                &mut notes,
                format!(
                    "{}: {} {} {} only in {test}/, not in {}/: training never sees {}, so only a model without --conditional can use this set",
                    root.display(),
                    if extra.len() == 1 { "class" } else { "classes" },
                    extra.iter().cloned().collect::<Vec<_>>().join(", "),
                    if extra.len() == 1 { "is" } else { "are" },
                    groups[0].0,
                    if extra.len() == 1 { "it" } else { "them" }
                ),
            );
            classes.extend(extra);
        }
    }
    let index: BTreeMap<&str, u32> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let mut splits = Vec::new();
    for (name, list) in groups {
        let mut labels = Vec::new();
        let mut kept = Vec::new();
        let mut loose = 0;
        for e in list {
            if !labelled {
                labels.push(None);
                kept.push(e);
                continue;
            }
            let Some(class) = below.class_of(&e.parts) else {
                loose += 1;
                continue;
            };
            let c = index[class];
            labels.push(Some(c));
            kept.push(e);
        }
        if loose > 0 {
            return Err(Error::Config(format!(
                "{}: {loose} images lie beside the class folders{} ({}): put every image in a class folder, or move the folders out",
                root.display(),
                if name.is_empty() {
                    String::new()
                } else {
                    format!(" of {name}/")
                },
                classes.join(", ")
            )));
        }
        if kept.is_empty() {
            return Err(Error::Config(format!(
                "{}: no images in {}",
                root.display(),
                if name.is_empty() {
                    "the class folders".to_string()
                } else {
                    format!("{name}/")
                }
            )));
        }
        splits.push((name, labels, kept));
    }
    Ok(Layout {
        splits,
        classes,
        notes,
    })
}

/// One decoded image, at its final size, always as RGB bytes until the channel count is known.
struct Decoded {
    rgb: Vec<u8>,
    h: usize,
    w: usize,
    colour: bool,
    /// Its height and width in the file, before any crop or resize.
    from: (u32, u32),
}

/// Decodes, crops and resizes one image; `name` labels errors.
/// Why an image could not be used: unreadable (skippable with `--skip-bad`), or of another size than the
/// others (never skipped: the set needs `--image-size`).
enum Unusable {
    Bad(String),
    Size(String),
}

fn decode(
    bytes: &[u8],
    opts: &ImageOptions,
    expect: Option<(u32, u32)>,
) -> std::result::Result<Decoded, Unusable> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Unusable::Bad(e.to_string()))?;
    // Without --image-size every image must have the first one's size: checked from the header, before
    // anything is decoded, so a set of huge images cannot fill memory first.
    if let Some((eh, ew)) = expect {
        let (w0, h0) = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Unusable::Bad(e.to_string()))?
            .into_dimensions()
            .map_err(|e| Unusable::Bad(format!("cannot decode: {e}")))?;
        let (h, w) = match opts.crop {
            Some(c) => (c as u32, c as u32),
            None => (h0, w0),
        };
        if (h, w) != (eh, ew) || opts.crop.is_some_and(|c| c as u32 > h0.min(w0)) {
            return Err(Unusable::Size(format!(
                "is {h0}x{w0}, but the first image is {eh}x{ew}{}: pass --image-size to resize them all (e.g. --image-size 64)",
                if opts.crop.is_some() {
                    " after the crop"
                } else {
                    ""
                }
            )));
        }
    }
    let mut reader = reader;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| {
        Unusable::Bad(match e {
            image::ImageError::Limits(_) => format!(
                "the image is larger than {MAX_SIDE}x{MAX_SIDE} pixels or {} MiB decoded (a decompression bomb?)",
                MAX_DECODED >> 20
            ),
            e => format!("cannot decode: {e}"),
        })
    })?;
    let mut img = img.into_rgb8();
    let from = (img.height(), img.width());
    if let Some(c) = opts.crop {
        let (w0, h0) = img.dimensions();
        if (c as u32) > w0 || (c as u32) > h0 {
            return Err(Unusable::Size(format!(
                "is {h0}x{w0}, smaller than --crop {c}"
            )));
        }
        let (x, y) = ((w0 - c as u32) / 2, (h0 - c as u32) / 2);
        img = image::imageops::crop_imm(&img, x, y, c as u32, c as u32).to_image();
    }
    if let Some((h, w)) = opts.size {
        img = resize_center_crop(&img, h as u32, w as u32);
    }
    let (w, h) = img.dimensions();
    let rgb = img.into_raw();
    let colour = rgb.chunks_exact(3).any(|p| p[0] != p[1] || p[1] != p[2]);
    Ok(Decoded {
        rgb,
        h: h as usize,
        w: w as usize,
        colour,
        from,
    })
}

/// torchvision's `Resize(min side)` then `CenterCrop((h, w))`: scale so the image covers h×w, then cut the
/// centre. Done in one antialiased bilinear pass (the `fast_image_resize` crate) from the source region that
/// the crop keeps, which is what the two steps compute.
fn resize_center_crop(img: &image::RgbImage, h: u32, w: u32) -> image::RgbImage {
    use fast_image_resize as fr;
    let (w0, h0) = img.dimensions();
    if (w0, h0) == (w, h) {
        return img.clone();
    }
    let scale = (h as f64 / h0 as f64).max(w as f64 / w0 as f64);
    // torchvision truncates the resized side and rounds the crop's offset.
    let nw = ((w0 as f64 * scale) as u32).max(w);
    let nh = ((h0 as f64 * scale) as u32).max(h);
    let (sx, sy) = (w0 as f64 / nw as f64, h0 as f64 / nh as f64);
    let x = ((nw - w) as f64 / 2.0).round();
    let y = ((nh - h) as f64 / 2.0).round();
    let src = fr::images::ImageRef::new(w0, h0, img.as_raw(), fr::PixelType::U8x3)
        .expect("an RGB buffer of its own size");
    let mut dst = fr::images::Image::new(w, h, fr::PixelType::U8x3);
    let opts = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
        .crop(x * sx, y * sy, w as f64 * sx, h as f64 * sy);
    fr::Resizer::new()
        .resize(&src, &mut dst, &opts)
        .expect("same pixel type, crop inside the source");
    image::RgbImage::from_raw(w, h, dst.into_vec()).expect("sized buffer")
}

/// Reads and decodes `entries` (bytes from `read`), in parallel, keeping their order; failures are errors or,
/// with `skip_bad`, dropped and named in the returned list.
fn decode_all(
    entries: &[Entry],
    read: &(dyn Fn(usize, &Entry) -> Result<Vec<u8>> + Sync),
    opts: &ImageOptions,
    root: &Path,
    expect: Option<(u32, u32)>,
) -> Result<(Vec<Option<Decoded>>, Vec<String>)> {
    let results: Vec<std::result::Result<Decoded, Unusable>> = entries
        .par_iter()
        .enumerate()
        .map(|(k, e)| {
            let bytes = read(k, e).map_err(|err| Unusable::Bad(err.to_string()))?;
            decode(&bytes, opts, expect).map_err(|u| match u {
                Unusable::Bad(m) => Unusable::Bad(format!("{}: {m}", describe(root, e))),
                Unusable::Size(m) => Unusable::Size(format!("{}: {m}", describe(root, e))),
            })
        })
        .collect();
    let mut skipped = Vec::new();
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(d) => out.push(Some(d)),
            Err(Unusable::Bad(m)) if opts.skip_bad => {
                skipped.push(m);
                out.push(None);
            }
            Err(Unusable::Bad(m)) => {
                return Err(Error::Config(format!(
                    "{m} (train --skip-bad leaves out images that do not decode)"
                )));
            }
            Err(Unusable::Size(m)) => return Err(Error::Config(m)),
        }
    }
    Ok((out, skipped))
}

fn describe(root: &Path, e: &Entry) -> String {
    match &e.origin {
        Origin::File(p) => p.display().to_string(),
        Origin::Entry(_) => format!("{} (entry {})", root.display(), e.name()),
    }
}

/// Loads the images of a folder or archive.
pub fn load(path: &Path, opts: &ImageOptions) -> Result<Found> {
    in_memory(path, opts, false)
}

/// Every image of a folder, archive or file, in sorted order of their paths below it, named by those paths,
/// without splits or classes: the items `encode --input` and `score` read.
pub fn load_flat(path: &Path, opts: &ImageOptions) -> Result<Dataset> {
    match in_memory(path, opts, true)? {
        Found::One(ds) => Ok(ds),
        Found::Split(..) => unreachable!("a flat layout has one split"),
    }
}

fn in_memory(path: &Path, opts: &ImageOptions, flat: bool) -> Result<Found> {
    let mut sink = Sink::Memory(Vec::new());
    let a = load_with(path, opts, flat, &mut sink)?;
    // Items read for a run (`--input`) take its size and channels whatever theirs: said, not done silently.
    if flat {
        let mut changed = Vec::new();
        let images = |n: usize| format!("{n} image{}", if n == 1 { "" } else { "s" });
        if let (n, Some((first, h0, w0))) = &a.resized {
            let which = if a.colour.1 == 1 { "it" } else { "the first" };
            changed.push(format!(
                "resized {n} of {} to {}x{} ({which}, {first}, is {h0}x{w0}; scaled to cover, then centre-cropped)",
                images(a.colour.1),
                a.shape.height,
                a.shape.width
            ));
        }
        if a.shape.channels == 1 && a.colour.0 > 0 {
            changed.push(format!("read {} with colour as grey", images(a.colour.0)));
        }
        if !changed.is_empty() {
            crate::notes::say!("elbo: {}: {}", path.display(), changed.join(", and "));
        }
    }
    let Sink::Memory(buffers) = sink else {
        unreachable!("a memory sink stays one")
    };
    let mut out = Vec::new();
    for ((_, labels, names), mut values) in a.splits.into_iter().zip(buffers) {
        if a.shape.channels == 1 {
            // In place: item i's grey pixels land before its RGB ones are read.
            for i in 0..values.len() / 3 {
                values[i] = luma(&values[3 * i..3 * i + 3]);
            }
            values.truncate(values.len() / 3);
            values.shrink_to_fit();
        }
        let mut ds = Dataset::from_bytes(a.shape, values, labels)?;
        ds.classes = a.classes.clone();
        ds.names = names;
        out.push(ds);
    }
    let mut it = out.into_iter();
    let first = it.next().expect("one split at least");
    Ok(match it.next() {
        Some(test) => Found::Split(first, test),
        None => Found::One(first),
    })
}

/// ITU-R 601 luma of an RGB pixel, as PIL's convert("L") and torchvision's Grayscale.
fn luma(p: &[u8]) -> u8 {
    ((299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32 + 500) / 1000) as u8
}

/// Decoded images spooled to an unnamed temporary file (gone when dropped, or if the process dies), read back
/// one item at a time: how a set larger than memory reaches the cache.
#[derive(Debug)]
pub struct Spooled {
    file: std::fs::File,
    scratch: Vec<u8>,
    /// The items' shape.
    pub shape: ItemShape,
    /// Class names (empty when unlabelled).
    pub classes: Vec<String>,
    /// Each split in order: its folder name ("" for a set without splits), labels (when labelled) and item
    /// names. Items are numbered across splits.
    pub splits: Vec<(String, Option<Vec<u32>>, Vec<String>)>,
    /// What was said about the set while it was decoded, for the cache entry to repeat.
    pub notes: Vec<String>,
}

impl Spooled {
    /// Fills `out` with item `i` at the set's channel count.
    pub fn row(&mut self, i: usize, out: &mut [u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let n = self.shape.height * self.shape.width * 3;
        self.scratch.resize(n, 0);
        self.file
            .read_exact_at(&mut self.scratch, (i * n) as u64)
            .map_err(|e| Error::Config(format!("reading back the decoded images: {e}")))?;
        if self.shape.channels == 3 {
            out.copy_from_slice(&self.scratch);
        } else {
            for (o, p) in out.iter_mut().zip(self.scratch.chunks_exact(3)) {
                *o = luma(p);
            }
        }
        Ok(())
    }
}

/// Decodes the images of a folder or archive into a temporary file in `dir`. Failures to write it are
/// [`Error::Io`] naming `dir`, so the caller can decode into memory instead.
pub fn spool(path: &Path, opts: &ImageOptions, dir: &Path) -> Result<Spooled> {
    let file = tempfile::tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    let mut sink = Sink::Spool {
        w: std::io::BufWriter::with_capacity(1 << 20, file),
        dir: dir.to_path_buf(),
    };
    let a = load_with(path, opts, false, &mut sink)?;
    let Sink::Spool { w, .. } = sink else {
        unreachable!("a spool sink stays one")
    };
    let file = w.into_inner().map_err(|e| Error::io(dir, e.into_error()))?;
    Ok(Spooled {
        file,
        scratch: Vec::new(),
        shape: a.shape,
        classes: a.classes,
        splits: a.splits,
        notes: a.notes,
    })
}

/// Where decoded images go as they are decoded: RGB items, in order.
enum Sink {
    /// On the heap, one buffer per split.
    Memory(Vec<Vec<u8>>),
    /// Appended to a file in `dir`.
    Spool {
        w: std::io::BufWriter<std::fs::File>,
        dir: PathBuf,
    },
}

impl Sink {
    fn push(&mut self, split: usize, rgb: &[u8]) -> Result<()> {
        match self {
            Sink::Memory(v) => {
                if v.len() <= split {
                    v.resize_with(split + 1, Vec::new);
                }
                v[split].extend_from_slice(rgb);
                Ok(())
            }
            Sink::Spool { w, dir } => {
                use std::io::Write;
                w.write_all(rgb).map_err(|e| Error::io(dir.as_path(), e))
            }
        }
    }

    /// Refuses `total` decoded RGB images of `h`×`w` that will not fit where they go, before they are
    /// decoded; `hint` says what to do.
    fn check_room(&self, root: &Path, total: usize, h: usize, w: usize, hint: &str) -> Result<()> {
        match self {
            Sink::Memory(_) => check_memory(root, total, h, w, hint),
            Sink::Spool { dir, .. } => {
                // The spool (RGB) and the cache entry written from it (at most RGB) side by side.
                let need = 2 * total as u64 * h as u64 * w as u64 * 3;
                match fs4::available_space(dir) {
                    Ok(free) if free < need => Err(Error::io(
                        dir,
                        std::io::Error::new(
                            std::io::ErrorKind::StorageFull,
                            format!(
                                "up to {} MiB needed to spool and store the decoded images, {} MiB free",
                                need.div_ceil(1 << 20),
                                free >> 20
                            ),
                        ),
                    )),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// What reading a set found, beside the pixels it put into its sink.
struct Assembly {
    shape: ItemShape,
    classes: Vec<String>,
    /// Each split: its name, labels (when labelled), item names.
    splits: Vec<(String, Option<Vec<u32>>, Vec<String>)>,
    /// What was said about the set while it was read.
    notes: Vec<String>,
    /// Images whose size in the file was not the set's, and the first of them with that size.
    resized: (usize, Option<(String, u32, u32)>),
    /// Images with colour, and images in all.
    colour: (usize, usize),
}

/// The bytes of an entry found on disk.
fn read_file(_: usize, e: &Entry) -> Result<Vec<u8>> {
    match &e.origin {
        Origin::File(p) => crate::fsutil::read_regular(p, MAX_FILE, "an image"),
        Origin::Entry(_) => unreachable!("entries of folders and single files are files"),
    }
}

fn load_with(path: &Path, opts: &ImageOptions, flat: bool, sink: &mut Sink) -> Result<Assembly> {
    check_options(opts)?;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        let (entries, hidden) = walk(path)?;
        let mut notes = Vec::new();
        if let Some(line) = hidden_note(&hidden) {
            note(&mut notes, line);
        }
        let lay = layout(entries, path, flat, notes)?;
        return from_files(path, lay, opts, sink);
    }
    if !meta.is_file() {
        return Err(Error::Config(format!(
            "{}: not a folder, archive or regular file",
            path.display()
        )));
    }
    if is_image_file(path) {
        let entry = Entry {
            parts: vec![os_name(path.file_name().unwrap_or_default())],
            origin: Origin::File(path.to_path_buf()),
        };
        let lay = layout(vec![entry], path, flat, Vec::new())?;
        return from_files(path, lay, opts, sink);
    }
    if path
        .to_string_lossy()
        .to_ascii_lowercase()
        .ends_with(".zip")
    {
        load_zip(path, opts, flat, sink)
    } else {
        load_tar(path, opts, flat, sink)
    }
}

/// Files on disk (a folder's, or one image) are read one by one as they are decoded.
fn from_files(path: &Path, lay: Layout, opts: &ImageOptions, sink: &mut Sink) -> Result<Assembly> {
    assemble(
        path,
        lay,
        opts,
        &|list, expect| decode_all(list, &read_file, opts, path, expect),
        sink,
    )
}

/// A zip's entries are inflated one at a time (the archive is one file); decoding runs in parallel in rounds.
fn load_zip(path: &Path, opts: &ImageOptions, flat: bool, sink: &mut Sink) -> Result<Assembly> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad_archive(path, e))?;
    // The zip format allows two entries of one name; reading one of them would be a guess.
    if zip.has_duplicate_names() {
        return Err(bad_archive(
            path,
            "an entry's name appears twice, so which file is meant is unclear",
        ));
    }
    let mut notes = Vec::new();
    let entries = archive::zip_members(path, &mut zip)?.entries(&mut notes);
    let lay = layout(entries, path, flat, notes)?;
    let zip = std::sync::Mutex::new(zip);
    let decode_list = |list: &[Entry], expect| {
        let mut out = Vec::with_capacity(list.len());
        let mut skipped = Vec::new();
        let mut start = 0;
        while start < list.len() {
            let bytes = zip_round(path, &zip, &list[start..])?;
            let end = start + bytes.len();
            let read = |k: usize, _: &Entry| -> Result<Vec<u8>> { Ok(bytes[k].clone()) };
            let (d, s) = decode_all(&list[start..end], &read, opts, path, expect)?;
            out.extend(d);
            skipped.extend(s);
            start = end;
        }
        Ok((out, skipped))
    };
    assemble(path, lay, opts, &decode_list, sink)
}

/// The bytes of the first entries of `list`: at most [`ROUND`] of them and about [`ROUND_BYTES`], at least one.
fn zip_round(
    path: &Path,
    zip: &std::sync::Mutex<zip::ZipArchive<std::fs::File>>,
    list: &[Entry],
) -> Result<Vec<Vec<u8>>> {
    let mut bytes = Vec::new();
    let mut held = 0u64;
    let mut z = zip
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for e in list.iter().take(ROUND) {
        if held >= ROUND_BYTES {
            break;
        }
        let Origin::Entry(i) = e.origin else {
            unreachable!("a zip's entries are entries")
        };
        let f = z.by_index(i).map_err(|err| bad_archive(path, err))?;
        let mut b = Vec::new();
        f.take(MAX_FILE + 1)
            .read_to_end(&mut b)
            .map_err(|err| bad_archive(path, format!("entry {}: {err}", e.name())))?;
        if b.len() as u64 > MAX_FILE {
            return Err(Error::Config(format!(
                "{}: entry {} is larger than {} MiB",
                path.display(),
                e.name(),
                MAX_FILE >> 20
            )));
        }
        held += b.len() as u64;
        bytes.push(b);
    }
    Ok(bytes)
}

/// A tar's images are held while the layout is worked out (see [`archive::tar_entries`]).
fn load_tar(path: &Path, opts: &ImageOptions, flat: bool, sink: &mut Sink) -> Result<Assembly> {
    let mut notes = Vec::new();
    let (entries, blobs) = archive::tar_entries(path, &mut notes)?;
    let lay = layout(entries, path, flat, notes)?;
    let read = |_: usize, e: &Entry| -> Result<Vec<u8>> {
        match e.origin {
            Origin::Entry(i) => blobs.get(&i).cloned(),
            Origin::File(_) => None,
        }
        .ok_or_else(|| bad_archive(path, format!("entry {} was not read", e.name())))
    };
    assemble(
        path,
        lay,
        opts,
        &|list, expect| decode_all(list, &read, opts, path, expect),
        sink,
    )
}

/// Refuses image options no image could take: a side, crop or channel count out of range.
pub(crate) fn check_options(opts: &ImageOptions) -> Result<()> {
    if let Some((h, w)) = opts.size
        && (h == 0 || w == 0 || h > 4096 || w > 4096)
    {
        return Err(Error::Config(format!(
            "--image-size {h}x{w}: each side must be between 1 and 4096"
        )));
    }
    if let Some(c) = opts.crop
        && (c == 0 || c > MAX_SIDE as usize)
    {
        return Err(Error::Config(format!(
            "--crop {c} must be between 1 and {MAX_SIDE}"
        )));
    }
    if let Some(c) = opts.channels
        && c != 1
        && c != 3
    {
        return Err(Error::Config(format!(
            "--channels {c} must be 1 (grey) or 3 (RGB)"
        )));
    }
    Ok(())
}

/// Refuses `total` decoded RGB images of `h`×`w` that would not fit in the memory available; `hint` says what to do.
fn check_memory(root: &Path, total: usize, h: usize, w: usize, hint: &str) -> Result<()> {
    let bytes = total as u128 * h as u128 * w as u128 * 3;
    let available = crate::resources::available_memory() as u128;
    if bytes > available {
        return Err(Error::Config(format!(
            "{}: {total} images of {h}x{w} need {:.1} GiB, more than the {:.1} GiB available: {hint}",
            root.display(),
            bytes as f64 / (1u64 << 30) as f64,
            available as f64 / (1u64 << 30) as f64
        )));
    }
    Ok(())
}

type DecodeList<'a> =
    dyn Fn(&[Entry], Option<(u32, u32)>) -> Result<(Vec<Option<Decoded>>, Vec<String>)> + 'a;

/// Decodes every split a round at a time into `sink`, and checks that all images share one size.
fn assemble(
    root: &Path,
    lay: Layout,
    opts: &ImageOptions,
    decode_list: &DecodeList,
    sink: &mut Sink,
) -> Result<Assembly> {
    // Room for the decoded items of every split, before anything is decoded (when the size is known).
    let total: usize = lay.splits.iter().map(|s| s.2.len()).sum();
    if let Some((h, w)) = opts.size {
        sink.check_room(
            root,
            total,
            h,
            w,
            "use a smaller --image-size or fewer images",
        )?;
    }
    // Without --image-size the first decodable image sets the size: known before the rest are decoded, so the
    // room they need and the size a model accepts are checked first.
    let mut expect = None;
    if opts.size.is_none() {
        let first = lay.splits[0].2.iter().find_map(|e| {
            decode_list(std::slice::from_ref(e), None)
                .ok()
                .and_then(|(d, _)| d.into_iter().next().flatten())
        });
        if let Some(d) = first {
            let (h, w) = (d.h, d.w);
            if h > 4096 || w > 4096 {
                return Err(Error::Config(format!(
                    "{}: images are {h}x{w}, more than the 4096 pixels a side a model takes: pass --image-size (e.g. --image-size 64)",
                    root.display()
                )));
            }
            sink.check_room(
                root,
                total,
                h,
                w,
                "pass --image-size (e.g. --image-size 64)",
            )?;
            expect = Some((h as u32, w as u32));
        }
    }
    let labelled = !lay.classes.is_empty();
    let mut splits = Vec::new();
    let mut size: Option<(usize, usize, String)> = None;
    let mut any_colour = false;
    let (mut colour_count, mut decoded_count) = (0usize, 0usize);
    let mut resized = (0usize, None);
    let mut skipped_all = Vec::new();
    for (k, (split, labels, entries)) in lay.splits.iter().enumerate() {
        let mut kept_labels = Vec::new();
        let mut names = Vec::new();
        // A round at a time, so only one round's decoded images are held besides the sink.
        for (chunk, chunk_labels) in entries.chunks(ROUND).zip(labels.chunks(ROUND)) {
            let (decoded, skipped) = decode_list(chunk, expect)?;
            skipped_all.extend(skipped);
            for ((d, l), e) in decoded.into_iter().zip(chunk_labels).zip(chunk) {
                let Some(d) = d else { continue };
                match &size {
                    None => size = Some((d.h, d.w, describe(root, e))),
                    Some((h, w, first)) if (*h, *w) != (d.h, d.w) => {
                        return Err(Error::Config(format!(
                            "{} is {}x{} but {first} is {h}x{w}: pass --image-size to resize them all (e.g. --image-size 64)",
                            describe(root, e),
                            d.h,
                            d.w
                        )));
                    }
                    _ => {}
                }
                any_colour |= d.colour;
                colour_count += usize::from(d.colour);
                decoded_count += 1;
                if d.from != (d.h as u32, d.w as u32) {
                    resized.0 += 1;
                    resized
                        .1
                        .get_or_insert((describe(root, e), d.from.0, d.from.1));
                }
                sink.push(k, &d.rgb)?;
                kept_labels.push(l.unwrap_or(0));
                names.push(e.name());
            }
        }
        splits.push((split.clone(), labelled.then_some(kept_labels), names));
    }
    let mut notes = lay.notes;
    if !skipped_all.is_empty() {
        note(
            &mut notes,
            format!(
                "skipped {} images that do not decode (--skip-bad); the first: {}",
                skipped_all.len(),
                skipped_all[0]
            ),
        );
    }
    let Some((h, w, _)) = size else {
        return Err(Error::Config(format!(
            "{}: none of its images could be decoded",
            root.display()
        )));
    };
    if let Some((split, ..)) = splits.iter().find(|s| s.2.is_empty()) {
        return Err(Error::Config(format!(
            "{}: no decodable images in {split}/",
            root.display()
        )));
    }
    let channels = opts.channels.unwrap_or(if any_colour { 3 } else { 1 });
    // Grey and colour images together: the choice of RGB is a guess, so it is said.
    if opts.channels.is_none() && any_colour && colour_count < decoded_count {
        note(
            &mut notes,
            format!(
                "{colour_count} of {decoded_count} images have colour: all are read as RGB (grey ones with three equal channels; --channels 1 reads all as grey)"
            ),
        );
    }
    Ok(Assembly {
        shape: ItemShape {
            height: h,
            width: w,
            channels,
        },
        classes: lay.classes,
        splits,
        notes,
        resized,
        colour: (colour_count, decoded_count),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, colour: bool, seed: u8) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let v = (x as u8)
                .wrapping_mul(7)
                .wrapping_add(y as u8 * 3)
                .wrapping_add(seed);
            if colour {
                image::Rgb([v, 255 - v, seed])
            } else {
                image::Rgb([v, v, v])
            }
        });
        let mut b = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Png)
            .unwrap();
        b
    }

    #[test]
    fn folder_with_classes_and_splits() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("wrap");
        for (split, class, n) in [("train", "cat", 3), ("train", "dog", 2), ("test", "dog", 1)] {
            let d = root.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                std::fs::write(d.join(format!("{i}.png")), png(5, 4, false, i)).unwrap();
            }
        }
        std::fs::write(root.join("train/notes.txt"), "not an image").unwrap();
        let Found::Split(train, test) = load(tmp.path(), &ImageOptions::default()).unwrap() else {
            panic!("splits expected")
        };
        assert_eq!(train.classes, ["cat", "dog"]);
        assert_eq!(train.labels.as_deref(), Some(&[0, 0, 0, 1, 1][..]));
        assert_eq!(test.labels.as_deref(), Some(&[1][..]));
        assert_eq!(train.shape, ItemShape::grey(4, 5));
        assert_eq!(train.names[3], "dog/0.png");
        let opts = ImageOptions {
            size: Some((2, 3)),
            channels: Some(3),
            ..Default::default()
        };
        let Found::Split(train, _) = load(tmp.path(), &opts).unwrap() else {
            panic!()
        };
        assert_eq!(train.shape.len(), 2 * 3 * 3);
    }

    #[test]
    fn every_usual_name_of_a_held_out_folder_is_a_split() {
        // In any case: GTSRB has Train/ and Test/, Kaggle's sets Training/ and Testing/.
        for (train_dir, held_out) in [
            ("train", "val"),
            ("train", "valid"),
            ("train", "validation"),
            ("Train", "Test"),
            ("Training", "Testing"),
            ("train", "Validation"),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            for (split, class) in [(train_dir, "cat"), (train_dir, "dog"), (held_out, "dog")] {
                let d = tmp.path().join(split).join(class);
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join("0.png"), png(5, 4, false, 1)).unwrap();
            }
            let Found::Split(train, test) = load(tmp.path(), &ImageOptions::default()).unwrap()
            else {
                panic!("{held_out}/: splits expected")
            };
            assert_eq!(train.classes, ["cat", "dog"], "{train_dir}/ {held_out}/");
            assert_eq!(test.labels.as_deref(), Some(&[1][..]), "{held_out}/");
        }
        // Beside test/, a validation/ folder is left out (and said), not read as a third split or a class.
        let tmp = tempfile::tempdir().unwrap();
        for split in ["train", "validation", "test"] {
            let d = tmp.path().join(split).join("cat");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("0.png"), png(5, 4, false, 1)).unwrap();
        }
        let (found, notes) = crate::notes::capture(|| load(tmp.path(), &ImageOptions::default()));
        let Found::Split(train, test) = found.unwrap() else {
            panic!("splits expected")
        };
        assert_eq!((train.len(), test.len(), train.classes.len()), (1, 1, 1));
        assert!(
            notes.iter().any(|n| n.contains(
                "(validation/ too: train/ is the training split and test/ the test split)"
            )),
            "{notes:?}"
        );
        // Folders named as splits with no train/ beside them are classes, and that is said.
        let tmp = tempfile::tempdir().unwrap();
        for split in ["test", "val"] {
            let d = tmp.path().join(split).join("cat");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("0.png"), png(5, 4, false, 1)).unwrap();
        }
        let (found, notes) = crate::notes::capture(|| load(tmp.path(), &ImageOptions::default()));
        let Found::One(set) = found.unwrap() else {
            panic!("one set expected")
        };
        assert_eq!(set.classes, ["test", "val"]);
        assert!(
            notes
                .iter()
                .any(|n| n.contains("test/, val/ read as class folders")),
            "{notes:?}"
        );
    }

    #[test]
    fn a_class_only_the_test_split_has_follows_the_training_classes() {
        // MVTec AD's layout: normal images to train on, normal and defective ones to test on.
        let tmp = tempfile::tempdir().unwrap();
        for (split, class) in [("train", "good"), ("test", "good"), ("test", "broken")] {
            let d = tmp.path().join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("0.png"), png(5, 4, false, 1)).unwrap();
        }
        let (found, notes) = crate::notes::capture(|| load(tmp.path(), &ImageOptions::default()));
        let Found::Split(train, test) = found.unwrap() else {
            panic!("splits expected")
        };
        assert_eq!(train.classes, ["good", "broken"]);
        assert_eq!(train.labels.as_deref(), Some(&[0][..]));
        assert_eq!(test.labels.as_deref(), Some(&[1, 0][..]));
        assert_eq!(test.names, ["broken/0.png", "good/0.png"]);
        assert!(
            notes.iter().any(|n| n
                .contains("class broken is only in test/, not in train/: training never sees it")),
            "{notes:?}"
        );
        // Training images with no class folder: the test split's folders label nothing, and that is said.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("train")).unwrap();
        std::fs::write(tmp.path().join("train/0.png"), png(5, 4, false, 1)).unwrap();
        for class in ["good", "broken"] {
            let d = tmp.path().join("test").join(class);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("0.png"), png(5, 4, false, 2)).unwrap();
        }
        let (found, notes) = crate::notes::capture(|| load(tmp.path(), &ImageOptions::default()));
        let Found::Split(train, test) = found.unwrap() else {
            panic!("splits expected")
        };
        assert!(!train.is_labelled() && !test.is_labelled());
        assert!(
            notes.iter().any(|n| n.contains(
                "test/ has class folders (broken, good) but train/ has none, so the set is read without classes"
            )),
            "{notes:?}"
        );
    }

    #[test]
    fn resize_covers_then_crops_the_centre() {
        let img = image::RgbImage::from_fn(40, 20, |x, _| {
            image::Rgb([if (10..30).contains(&x) { 255 } else { 0 }; 3])
        });
        let out = resize_center_crop(&img, 10, 10);
        assert_eq!(out.dimensions(), (10, 10));
        // The centre 20x20 of the original is all white.
        assert!(
            out.pixels().all(|p| p.0[0] > 200),
            "{:?}",
            out.pixels().map(|p| p.0[0]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn names_are_escaped_reversibly_never_merged() {
        assert_eq!(escape_name(b"bad\xff"), "bad\\xff");
        assert_ne!(escape_name(b"bad\xff"), escape_name(b"bad\xfe"));
        // A real backslash is escaped too, so no real name spells another's escape.
        assert_eq!(escape_name(b"bad\\xff"), "bad\\\\xff");
        assert_eq!(escape_name(b"a\nb\x7f"), "a\\x0ab\\x7f");
        assert_eq!(escape_name("a\u{85}é:1".as_bytes()), "a\\u{85}é:1");
        assert_ne!(escape_name("\u{85}".as_bytes()), escape_name(b"\x85"));
    }

    fn classes(names: &[&str], known: &[&str]) -> Vec<Option<String>> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let known: Vec<String> = known.iter().map(|n| n.to_string()).collect();
        classes_of(&names, &known)
    }

    fn some(names: &[&str]) -> Vec<Option<String>> {
        names.iter().map(|n| Some(n.to_string())).collect()
    }

    #[test]
    fn an_items_class_is_its_top_folder_as_in_training() {
        // ImageFolder's rule: the top folder, not the direct parent.
        assert_eq!(
            classes(&["a/b/x0.png", "c/y.png"], &["a", "c"]),
            some(&["a", "c"])
        );
        assert_eq!(
            classes(&["a/2019/x.png", "b/y.png"], &["a", "b"]),
            some(&["a", "b"])
        );
        // Splits and wrapping folders are looked through as training does.
        assert_eq!(
            classes(
                &["train/a/x.png", "test/b/k/y.png", "other/z.png"],
                &["a", "b"]
            ),
            vec![Some("a".into()), Some("b".into()), None]
        );
        assert_eq!(
            classes(&["wrap/test/a/x.png", "wrap/test/b/y.png"], &["a", "b"]),
            some(&["a", "b"])
        );
        // A folder of one class is that class, unless looking through it names only known classes.
        assert_eq!(classes(&["cat/x.png"], &["cat", "dog"]), some(&["cat"]));
        assert_eq!(classes(&["cat/x.png"], &[]), vec![None]);
        assert_eq!(
            classes(&["a/2019/x.png", "a/2020/y.png"], &["a", "b"]),
            some(&["a", "a"])
        );
        assert_eq!(
            classes(&["cat/cat/x.png", "cat/dog/y.png"], &["cat", "dog"]),
            some(&["cat", "dog"])
        );
        assert_eq!(classes(&["x.png"], &["a"]), vec![None]);
        // Split folders training left out still hold classes, for a folder read whole.
        assert_eq!(
            classes(
                &[
                    "train/a/x.png",
                    "TEST/b/y.png",
                    "val/a/z.png",
                    "valid/b/w.png"
                ],
                &["a", "b"]
            ),
            some(&["a", "b", "a", "b"])
        );
    }

    #[test]
    fn training_classes_are_top_folders_below_the_split() {
        let tmp = tempfile::tempdir().unwrap();
        for (dir, seed) in [
            ("train/a/b", 0),
            ("train/c", 1),
            ("test/a/d", 2),
            ("test/c", 3),
        ] {
            let d = tmp.path().join(dir);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("x.png"), png(3, 3, false, seed)).unwrap();
        }
        let Found::Split(train, test) = load(tmp.path(), &ImageOptions::default()).unwrap() else {
            panic!("splits expected")
        };
        assert_eq!(train.classes, ["a", "c"]);
        assert_eq!(test.labels.as_deref(), Some(&[0, 1][..]));
        let flat = load_flat(tmp.path(), &ImageOptions::default()).unwrap();
        assert_eq!(
            classes_of(&flat.names, &train.classes),
            some(&["a", "c", "a", "c"])
        );
    }
}
