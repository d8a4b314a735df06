//! The members of a zip or tar archive as image entries. Paths are checked to stay inside the archive and are
//! named as a folder's files are ([`escape_name`]); links (tar's hard and symbolic links, zip's symbolic links)
//! are read as the regular entry they lead to inside the archive, and never followed outside it.

use super::{
    Entry, MAX_FILE, Origin, bad_archive, escape_name, hidden_note, is_hidden, is_image_name,
    keep_entry, note,
};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;

/// Links followed one after another before the chain is taken for a loop (Linux follows 40).
const MAX_HOPS: usize = 16;
/// Path components walked to resolve one link, so an archive of many long chains cannot stall the reading.
const MAX_STEPS: usize = 4096;
/// Longest link target read from a zip entry (Linux's PATH_MAX).
const MAX_TARGET: u64 = 4096;

/// A member of an archive.
pub(super) enum Member {
    /// A regular entry: its index in the zip, or its position in the tar stream.
    File(usize),
    Dir,
    /// A link and the raw path it names: from the link's folder (symbolic), or from the archive's root (hard).
    Link {
        target: Vec<u8>,
        hard: bool,
    },
}

/// Why a link is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dead {
    Outside,
    Missing,
    Folder,
    Loop,
}

/// Why an archive path would land outside the folder it is unpacked into, if it would. elbo never unpacks, but
/// such an entry means the archive was made to attack, so the archive is refused. `backslash`: whether `\`
/// separates folders (see [`zip_members`]); `:` is an ordinary character (`img0:0.png`) except after a drive
/// letter at the start (`C:/`, `C:\`).
fn unsafe_reason(raw: &[u8], backslash: bool) -> Option<&'static str> {
    if raw.contains(&0) {
        return Some("it holds a NUL byte");
    }
    if raw.first().is_some_and(|&b| is_sep(b, backslash)) {
        return Some("it is absolute");
    }
    if is_drive(raw) {
        return Some("it starts with a Windows drive letter");
    }
    if raw.split(|&b| is_sep(b, backslash)).any(|c| c == b"..") {
        return Some("it has a '..' component");
    }
    None
}

fn is_sep(b: u8, backslash: bool) -> bool {
    b == b'/' || (backslash && b == b'\\')
}

fn is_drive(raw: &[u8]) -> bool {
    matches!(raw, [d, b':', rest @ ..] if d.is_ascii_alphabetic() && rest.first().is_none_or(|&b| b == b'/' || b == b'\\'))
}

/// An archive's members by their escaped path components. A path listed twice is the later member, as
/// unpacking would leave it.
pub(super) struct Members<'a> {
    archive: &'a Path,
    members: BTreeMap<Vec<String>, Member>,
    /// Every folder holding a member, listed or not.
    folders: HashSet<Vec<String>>,
}

impl<'a> Members<'a> {
    fn new(archive: &'a Path) -> Self {
        Members {
            archive,
            members: BTreeMap::new(),
            folders: HashSet::new(),
        }
    }

    /// The escaped components of a raw path, without empty and `.` ones.
    fn split(raw: &[u8], backslash: bool) -> Vec<String> {
        raw.split(|&b| is_sep(b, backslash))
            .filter(|c| !c.is_empty() && *c != b".")
            .map(escape_name)
            .collect()
    }

    /// Adds the member at `raw`, refusing the archive when that path is unsafe ([`unsafe_reason`]); its path,
    /// or `None` for the archive's root itself (`./`).
    fn insert(
        &mut self,
        raw: &[u8],
        backslash: bool,
        member: Member,
    ) -> Result<Option<Vec<String>>> {
        if let Some(why) = unsafe_reason(raw, backslash) {
            return Err(Error::Config(format!(
                "{}: entry '{}' has an unsafe path ({why}); refusing the archive",
                self.archive.display(),
                escape_name(raw)
            )));
        }
        let parts = Self::split(raw, backslash);
        if parts.is_empty() {
            return Ok(None);
        }
        for k in 1..parts.len() {
            self.folders.insert(parts[..k].to_vec());
        }
        if matches!(member, Member::Dir) {
            self.folders.insert(parts.clone());
        }
        self.members.insert(parts.clone(), member);
        Ok(Some(parts))
    }

    /// A link target's components, last first; absolute targets and drives lead outside. Links are Unix's,
    /// so only `/` separates.
    fn target_parts(target: &[u8]) -> std::result::Result<Vec<String>, Dead> {
        if target.is_empty() || target.contains(&0) {
            return Err(Dead::Missing);
        }
        if target[0] == b'/' || is_drive(target) {
            return Err(Dead::Outside);
        }
        let mut parts = Self::split(target, false);
        parts.reverse();
        Ok(parts)
    }

    /// The regular member that the link at `at` naming `target` leads to, through at most [`MAX_HOPS`] links
    /// and [`MAX_STEPS`] components.
    /// `..` is taken from where a link has led, as the system does.
    fn resolve(
        &self,
        at: &[String],
        target: &[u8],
        hard: bool,
    ) -> std::result::Result<usize, Dead> {
        let mut path: Vec<String> = if hard {
            Vec::new()
        } else {
            at[..at.len() - 1].to_vec()
        };
        let mut todo = Self::target_parts(target)?;
        let mut hops = 1;
        let mut steps = 0;
        while let Some(c) = todo.pop() {
            steps += 1;
            if steps > MAX_STEPS {
                return Err(Dead::Loop);
            }
            if c == ".." {
                path.pop().ok_or(Dead::Outside)?;
                continue;
            }
            path.push(c);
            match self.members.get(&path) {
                Some(Member::File(i)) if todo.is_empty() => return Ok(*i),
                Some(Member::Link { target, hard }) => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(Dead::Loop);
                    }
                    path.pop();
                    if *hard {
                        path.clear();
                    }
                    todo.extend(Self::target_parts(target)?);
                }
                Some(Member::Dir) | None if self.folders.contains(&path) => {}
                _ => return Err(Dead::Missing),
            }
        }
        Err(Dead::Folder)
    }

    /// The image entries: regular members named like images, and links named like images that lead to a
    /// regular member. Links that are not read (outside the archive, to a folder, in a loop, or named like an
    /// image and leading nowhere) are counted in one line, kept in `notes`.
    pub(super) fn entries(&self, notes: &mut Vec<String>) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut dead: Vec<(Dead, &[String], &[u8])> = Vec::new();
        let mut hidden = Vec::new();
        for (parts, member) in &self.members {
            let image = keep_entry(parts);
            let visible = image || !parts.iter().any(|p| is_hidden(p));
            if !visible
                && parts.last().is_some_and(|n| is_image_name(n))
                && matches!(member, Member::File(_) | Member::Link { .. })
            {
                hidden.push(parts.join("/"));
            }
            match member {
                Member::File(i) if image => out.push(Entry {
                    parts: parts.clone(),
                    origin: Origin::Entry(*i),
                }),
                Member::Link { target, hard } if visible => {
                    match (self.resolve(parts, target, *hard), image) {
                        (Ok(i), true) => out.push(Entry {
                            parts: parts.clone(),
                            origin: Origin::Entry(i),
                        }),
                        // A link named like no image, to a file or nowhere, is no image, as in a folder.
                        (Ok(_) | Err(Dead::Missing), false) => {}
                        (Err(d), _) => dead.push((d, parts, target)),
                    }
                }
                _ => {}
            }
        }
        if let Some(line) = hidden_note(&hidden) {
            note(notes, line);
        }
        if let Some((_, at, target)) = dead.first() {
            // (kind, verb for one, verb for more, what)
            let kinds: Vec<String> = [
                (Dead::Outside, "leads", "lead", "outside the archive"),
                (Dead::Folder, "leads", "lead", "to a folder"),
                (Dead::Missing, "leads", "lead", "to no entry of it"),
                (Dead::Loop, "is", "are", "in a loop or too long a chain"),
            ]
            .into_iter()
            .map(|(d, one, more, what)| (dead.iter().filter(|x| x.0 == d).count(), one, more, what))
            .filter(|(n, ..)| *n > 0)
            .map(|(n, one, more, what)| format!("{n} {} {what}", if n == 1 { one } else { more }))
            .collect();
            note(
                notes,
                format!(
                    "{}: {} in it {} not read ({}; the first is {} -> {}): elbo reads a link only when it leads to a file inside the archive, through at most {MAX_HOPS} links",
                    self.archive.display(),
                    if dead.len() == 1 {
                        "1 link".to_string()
                    } else {
                        format!("{} links", dead.len())
                    },
                    if dead.len() == 1 { "is" } else { "are" },
                    kinds.join(", "),
                    at.join("/"),
                    escape_name(target)
                ),
            );
        }
        out
    }
}

/// The members of a zip archive; the targets of its symbolic links (`zip -y`) are read from their entries. A
/// `\` separates folders in an entry written elsewhere than on Unix (Windows tools write it), and is part of
/// a name in one written on Unix, as in a tar.
pub(super) fn zip_members<'a>(
    path: &'a Path,
    zip: &mut zip::ZipArchive<std::fs::File>,
) -> Result<Members<'a>> {
    let mut members = Members::new(path);
    for i in 0..zip.len() {
        let (raw, backslash, member) = {
            let f = zip.by_index_raw(i).map_err(|e| bad_archive(path, e))?;
            let member = if f.is_dir() {
                Member::Dir
            } else if f.is_symlink() {
                Member::Link {
                    target: Vec::new(),
                    hard: false,
                }
            } else {
                Member::File(i)
            };
            (
                f.name_raw().to_vec(),
                f.system() != zip::System::Unix,
                member,
            )
        };
        let member = match member {
            Member::Link { hard, .. } => Member::Link {
                target: zip_link_target(path, zip, i, &raw)?,
                hard,
            },
            m => m,
        };
        members.insert(&raw, backslash, member)?;
    }
    Ok(members)
}

/// The target a zip symbolic link holds as its content; one longer than a path can be leads nowhere.
fn zip_link_target(
    path: &Path,
    zip: &mut zip::ZipArchive<std::fs::File>,
    i: usize,
    raw: &[u8],
) -> Result<Vec<u8>> {
    let f = zip.by_index(i).map_err(|e| bad_archive(path, e))?;
    let mut target = Vec::new();
    f.take(MAX_TARGET + 1)
        .read_to_end(&mut target)
        .map_err(|e| bad_archive(path, format!("entry {}: {e}", escape_name(raw))))?;
    if target.len() as u64 > MAX_TARGET {
        target.clear();
    }
    Ok(target)
}

type TarEntry<'a> = tar::Entry<'a, Box<dyn Read>>;

/// Reads a tar (gzipped or not) entry by entry: `each` gets an entry's position in the stream and the entry.
fn tar_each(path: &Path, each: &mut dyn FnMut(usize, &mut TarEntry) -> Result<()>) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let lower = path.to_string_lossy().to_ascii_lowercase();
    let reader: Box<dyn Read> = if lower.ends_with(".gz") || lower.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut archive = tar::Archive::new(reader);
    for (i, e) in archive
        .entries()
        .map_err(|e| bad_archive(path, e))?
        .enumerate()
    {
        let mut e = e.map_err(|err| bad_archive(path, err))?;
        each(i, &mut e)?;
    }
    Ok(())
}

/// The member a tar entry is, or `None` for one no folder would list as an image (a device, a FIFO).
fn tar_member(i: usize, e: &TarEntry) -> Option<Member> {
    use tar::EntryType as T;
    match e.header().entry_type() {
        T::Regular | T::Continuous | T::GNUSparse => Some(Member::File(i)),
        T::Directory => Some(Member::Dir),
        t @ (T::Symlink | T::Link) => Some(Member::Link {
            target: e
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            hard: t == T::Link,
        }),
        _ => None,
    }
}

/// The bytes of tar entries held in memory, within half the memory available.
struct Held<'a> {
    archive: &'a Path,
    bytes: u64,
    budget: u64,
}

impl Held<'_> {
    fn read(&mut self, e: &mut TarEntry, raw: &[u8]) -> Result<Vec<u8>> {
        let name = escape_name(raw);
        let too_large = || {
            Error::Config(format!(
                "{}: entry {name} is larger than {} MiB",
                self.archive.display(),
                MAX_FILE >> 20
            ))
        };
        if e.size() > MAX_FILE {
            return Err(too_large());
        }
        self.bytes += e.size();
        if self.bytes > self.budget {
            return Err(Error::Config(format!(
                "{}: its images hold more than the {} MiB of memory available to read them: unpack it and pass the folder",
                self.archive.display(),
                self.budget >> 20
            )));
        }
        let mut b = Vec::with_capacity(e.size() as usize);
        e.take(MAX_FILE + 1)
            .read_to_end(&mut b)
            .map_err(|err| bad_archive(self.archive, format!("entry {name}: {err}")))?;
        if b.len() as u64 > MAX_FILE {
            return Err(too_large());
        }
        Ok(b)
    }
}

/// The bytes of a tar's entries by their position in the stream.
pub(super) type Blobs = HashMap<usize, Vec<u8>>;

/// A tar's image entries and their bytes by stream position. A stream cannot be revisited cheaply, so the
/// images are held while the layout is worked out; the few files that links lead to but that are not named
/// like images are read in a second pass.
pub(super) fn tar_entries(path: &Path, notes: &mut Vec<String>) -> Result<(Vec<Entry>, Blobs)> {
    let mut members = Members::new(path);
    let mut blobs = HashMap::new();
    let mut held = Held {
        archive: path,
        bytes: 0,
        budget: crate::resources::available_memory() / 2,
    };
    tar_each(path, &mut |i, e| {
        let Some(member) = tar_member(i, e) else {
            return Ok(());
        };
        let file = matches!(member, Member::File(_));
        let raw = e.path_bytes().into_owned();
        if let Some(parts) = members.insert(&raw, false, member)?
            && file
            && keep_entry(&parts)
        {
            blobs.insert(i, held.read(e, &raw)?);
        }
        Ok(())
    })?;
    let entries = members.entries(notes);
    let used: HashSet<usize> = entries
        .iter()
        .filter_map(|e| match e.origin {
            Origin::Entry(i) => Some(i),
            Origin::File(_) => None,
        })
        .collect();
    blobs.retain(|i, _| used.contains(i));
    let unread: HashSet<usize> = used
        .iter()
        .filter(|i| !blobs.contains_key(i))
        .copied()
        .collect();
    if !unread.is_empty() {
        tar_each(path, &mut |i, e| {
            if unread.contains(&i) {
                let raw = e.path_bytes().into_owned();
                blobs.insert(i, held.read(e, &raw)?);
            }
            Ok(())
        })?;
    }
    Ok((entries, blobs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused_with_the_reason() {
        assert_eq!(unsafe_reason(b"set/img0:0.png", true), None);
        assert_eq!(unsafe_reason(b"c:x.png", true), None);
        assert_eq!(unsafe_reason(b"a/..b/x.png", true), None);
        assert_eq!(
            unsafe_reason(b"../x.png", true),
            Some("it has a '..' component")
        );
        assert_eq!(
            unsafe_reason(b"a\\..\\x.png", true),
            Some("it has a '..' component")
        );
        assert_eq!(unsafe_reason(b"a\\..\\x.png", false), None);
        assert_eq!(unsafe_reason(b"/etc/x.png", false), Some("it is absolute"));
        assert_eq!(unsafe_reason(b"\\x.png", true), Some("it is absolute"));
        assert_eq!(
            unsafe_reason(b"C:\\x.png", false),
            Some("it starts with a Windows drive letter")
        );
        assert_eq!(
            unsafe_reason(b"C:/x.png", true),
            Some("it starts with a Windows drive letter")
        );
        assert_eq!(
            unsafe_reason(b"a\0b.png", true),
            Some("it holds a NUL byte")
        );
    }

    #[test]
    fn backslashes_separate_only_where_the_entry_says_so() {
        let mut m = Members::new(Path::new("x.zip"));
        let windows = m.insert(b"a\\x.png", true, Member::File(0)).unwrap();
        let unix = m.insert(b"b\\x.png", false, Member::File(1)).unwrap();
        assert_eq!(windows.unwrap(), ["a", "x.png"]);
        assert_eq!(unix.unwrap(), ["b\\\\x.png"]);
    }

    fn tree(members: Vec<(&str, Member)>) -> Members<'static> {
        let mut m = Members::new(Path::new("x.tar"));
        for (p, member) in members {
            m.insert(p.as_bytes(), false, member).unwrap();
        }
        m
    }

    fn link(target: &str) -> Member {
        Member::Link {
            target: target.as_bytes().to_vec(),
            hard: false,
        }
    }

    fn hard(target: &str) -> Member {
        Member::Link {
            target: target.as_bytes().to_vec(),
            hard: true,
        }
    }

    #[test]
    fn links_resolve_inside_the_archive_only() {
        let m = tree(vec![
            ("a/x.png", Member::File(0)),
            ("a/y.txt", Member::File(1)),
            ("b/sym.png", link("../a/x.png")),
            ("b/hard.png", hard("./a/x.png")),
            ("b/dir", link("../a")),
            ("b/through.png", link("dir/x.png")),
            ("b/chain.png", link("sym.png")),
            ("b/text.png", link("../a/y.txt")),
            ("b/out.png", link("../../etc/passwd")),
            ("b/abs.png", link("/etc/passwd")),
            ("b/gone.png", link("nothing.png")),
            ("b/loop1.png", link("loop2.png")),
            ("b/loop2.png", link("loop1.png")),
            ("b/self.png", link("self.png")),
            ("b/folder.png", link("../a")),
            ("b/file_as_dir.png", link("../a/x.png/z.png")),
        ]);
        let r = |p: &str| {
            let parts = Members::split(p.as_bytes(), false);
            let Some(Member::Link { target, hard }) = m.members.get(&parts) else {
                panic!("{p} is a link")
            };
            m.resolve(&parts, target, *hard)
        };
        assert_eq!(r("b/sym.png"), Ok(0));
        assert_eq!(r("b/hard.png"), Ok(0));
        assert_eq!(r("b/through.png"), Ok(0));
        assert_eq!(r("b/chain.png"), Ok(0));
        assert_eq!(r("b/text.png"), Ok(1));
        assert_eq!(r("b/out.png"), Err(Dead::Outside));
        assert_eq!(r("b/abs.png"), Err(Dead::Outside));
        assert_eq!(r("b/gone.png"), Err(Dead::Missing));
        assert_eq!(r("b/loop1.png"), Err(Dead::Loop));
        assert_eq!(r("b/self.png"), Err(Dead::Loop));
        assert_eq!(r("b/folder.png"), Err(Dead::Folder));
        assert_eq!(r("b/file_as_dir.png"), Err(Dead::Missing));
        let mut notes = Vec::new();
        let names: Vec<String> = m.entries(&mut notes).iter().map(Entry::name).collect();
        assert_eq!(
            names,
            [
                "a/x.png",
                "b/chain.png",
                "b/hard.png",
                "b/sym.png",
                "b/text.png",
                "b/through.png"
            ]
        );
        // One line for all the links left out: out, abs (outside), folder and the dir link (folders), gone and
        // file_as_dir (nothing), the loops.
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("9 links"), "{}", notes[0]);
        assert!(notes[0].contains("2 lead outside"), "{}", notes[0]);
    }
}
