//! Checkpoints: weights, optimiser moments, RNG states, epoch and metric history in one safetensors file.
//!
//! One file per checkpoint so that a single atomic rename publishes all of it. The previous checkpoint is
//! kept beside the newest as a fallback.

use super::config::RunConfig;
use super::metrics::EpochMetrics;
use crate::core::{Adam, Params};
use crate::error::{Error, Result};
use crate::fault;
use crate::fsutil::{sync_dir, write_temp};
use crate::model::Vae;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// File name of the newest checkpoint in a run directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// File name of the one before it.
pub const PREVIOUS: &str = "checkpoint.prev.safetensors";
const FORMAT: &str = "elbo-checkpoint-1";

/// Everything besides the tensors needed to continue a run exactly.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Adam steps taken.
    pub adam_t: u64,
    /// RNG for shuffling and dynamic binarisation.
    pub data_rng: rand_pcg::Pcg64Mcg,
    /// RNG for the reparameterisation noise.
    pub noise_rng: rand_pcg::Pcg64Mcg,
    /// Metrics of every completed epoch.
    pub history: Vec<EpochMetrics>,
}

/// A loaded checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The run's configuration.
    pub config: RunConfig,
    /// The model with its weights.
    pub vae: Vae<f32>,
    /// Adam's moments.
    pub adam: Adam<f32>,
    /// Counters and RNGs.
    pub state: TrainState,
}

/// md5 over the metadata and every tensor (by name order), so that a flipped bit anywhere is caught on load.
fn checksum<'a>(
    tensors: impl Iterator<Item = (&'a str, &'a [u8])>,
    config: &str,
    state: &str,
) -> String {
    use md5::Digest;
    let mut all: Vec<(&str, &[u8])> = tensors.collect();
    all.sort_by_key(|t| t.0);
    let mut h = md5::Md5::new();
    for part in [config.as_bytes(), state.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    for (name, data) in all {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
    }
    format!("{:x}", h.finalize())
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Serialises a checkpoint to bytes.
pub fn to_bytes(
    config: &RunConfig,
    params: &Params<f32>,
    adam: &Adam<f32>,
    state: &TrainState,
) -> Result<Vec<u8>> {
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for spec in &params.specs {
        let r = spec.range();
        buffers.push((
            spec.name.clone(),
            spec.shape.clone(),
            f32_bytes(&params.data[r.clone()]),
        ));
        if !adam.m.is_empty() {
            buffers.push((
                format!("optimizer.m.{}", spec.name),
                spec.shape.clone(),
                f32_bytes(&adam.m[r.clone()]),
            ));
            buffers.push((
                format!("optimizer.v.{}", spec.name),
                spec.shape.clone(),
                f32_bytes(&adam.v[r]),
            ));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = buffers
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("shape matches bytes"),
            )
        })
        .collect();
    let json = |v: &dyn erased::Json| v.to_json();
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("config".to_string(), json(config)?);
    meta.insert("state".to_string(), json(state)?);
    let tensors = buffers.iter().map(|(n, _, b)| (n.as_str(), b.as_slice()));
    meta.insert(
        "checksum".to_string(),
        checksum(tensors, &meta["config"], &meta["state"]),
    );
    safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::Config(format!("cannot serialise checkpoint: {e}")))
}

mod erased {
    /// Serialises any config or state to a JSON string.
    pub trait Json {
        fn to_json(&self) -> crate::error::Result<String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> crate::error::Result<String> {
            serde_json::to_string(self).map_err(|e| crate::error::Error::Config(e.to_string()))
        }
    }
}

/// Writes a checkpoint into `dir` atomically, keeping the previous one as [`PREVIOUS`].
pub fn save(
    dir: &Path,
    config: &RunConfig,
    params: &Params<f32>,
    adam: &Adam<f32>,
    state: &TrainState,
) -> Result<()> {
    let bytes = to_bytes(config, params, adam, state)?;
    // A signal mid-save acts once the checkpoint is in place, leaving no temporary files.
    crate::signals::held_during(|| publish(dir, &bytes))
}

/// Puts new checkpoint bytes in place in an order where a failure or a kill at any step leaves [`CHECKPOINT`]
/// naming a whole checkpoint, old or new: the new file is complete and synced before anything is renamed, the
/// current one gets its second name [`PREVIOUS`] by a hard link (so neither name is ever missing), and only
/// then does one rename replace it. A write that fails (full disk, `ulimit -f`) therefore changes nothing.
fn publish(dir: &Path, bytes: &[u8]) -> Result<()> {
    check_room(dir, bytes.len() as u64)?;
    let path = dir.join(CHECKPOINT);
    let tmp = write_temp(&path, bytes)?;
    let prev_tmp = dir.join(format!(".{PREVIOUS}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            let _ = std::fs::remove_file(&prev_tmp);
            fault::point("link the current checkpoint as the previous one")?;
            if std::fs::hard_link(&path, &prev_tmp).is_err() {
                // Some file systems (FAT, some network mounts) have no hard links: a synced copy does the same.
                std::fs::copy(&path, &prev_tmp)?;
                std::fs::File::open(&prev_tmp)?.sync_all()?;
            }
            fault::point("rename the link over the previous checkpoint")?;
            std::fs::rename(&prev_tmp, dir.join(PREVIOUS))?;
            // After a save that failed at its last step both names are links to one file, and renaming one
            // link of a file over another is a no-op that leaves the source in place.
            let _ = std::fs::remove_file(&prev_tmp);
        }
        fault::point("rename the new checkpoint into place")?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir);
        Ok(())
    })();
    result.map_err(|e| {
        if !fault::killed() {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(&prev_tmp);
        }
        Error::io(&path, e)
    })
}

/// Room written beside a checkpoint besides the checkpoint itself (metrics, figures' temporary files).
const SLACK: u64 = 1 << 20;

/// Refuses a save the disk has no room for, naming the megabytes, before anything is written. A save needs
/// one more checkpoint's worth: the new file is whole before the previous one is let go.
fn check_room(dir: &Path, checkpoint: u64) -> Result<()> {
    // Where the free space cannot be read (some network mounts), the write itself will tell.
    let Ok(free) = fs4::available_space(dir) else {
        return Ok(());
    };
    let needed = checkpoint + SLACK;
    if free < needed {
        return Err(Error::NoRoom {
            path: dir.to_path_buf(),
            what: "one more checkpoint",
            needed,
            free,
        });
    }
    Ok(())
}

/// Refuses to train when the disk cannot take the next checkpoint (the size of the current one), so a run
/// does not spend an epoch before its save fails.
pub fn check_room_for_next(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir.join(CHECKPOINT)) {
        Ok(m) if m.is_file() => check_room(dir, m.len()),
        _ => Ok(()),
    }
}

/// Parses checkpoint bytes; `path` names the file in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let meta = metadata.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(format!(
            "not an elbo checkpoint (expected format {FORMAT})"
        )));
    }
    let get = |k: &str| {
        meta.get(k)
            .ok_or_else(|| bad(format!("metadata has no '{k}'")))
    };
    let config: RunConfig = serde_json::from_str(get("config")?)
        .map_err(|e| bad(format!("bad config in metadata: {e}")))?;
    config
        .validate()
        .map_err(|e| bad(format!("impossible config in metadata: {e}")))?;
    let state: TrainState = serde_json::from_str(get("state")?)
        .map_err(|e| bad(format!("bad training state in metadata: {e}")))?;
    let tensors =
        SafeTensors::deserialize(bytes).map_err(|e| bad(format!("corrupted tensors ({e})")))?;
    let stored = get("checksum")?;
    let names = tensors.names();
    let views: Vec<(&str, &[u8])> = names
        .iter()
        .filter_map(|n| tensors.tensor(n).ok().map(|t| (&n[..], t.data())))
        .collect();
    if checksum(views.into_iter(), get("config")?, get("state")?) != *stored {
        return Err(bad("checksum mismatch: the checkpoint is damaged".into()));
    }
    let mut vae = Vae::<f32>::uninit(config.model.clone());
    let mut adam = config.train.adam_for(&vae);
    adam.t = state.adam_t;
    let specs = vae.params.specs.clone();
    let read = |name: &str, shape: &[usize], out: &mut [f32]| -> Result<()> {
        let t = tensors.tensor(name).map_err(|_| {
            bad(format!(
                "tensor '{name}' is missing: the checkpoint is from another architecture or damaged"
            ))
        })?;
        if t.dtype() != Dtype::F32 || t.shape() != shape {
            return Err(bad(format!(
                "tensor '{name}' is {:?} {:?}, the config needs F32 {shape:?}: the checkpoint is from another architecture",
                t.dtype(),
                t.shape()
            )));
        }
        for (o, c) in out.iter_mut().zip(t.data().chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        if out.iter().any(|v| !v.is_finite()) {
            return Err(bad(format!("tensor '{name}' holds NaN or infinite values")));
        }
        if name.ends_with("running_var") && out.iter().any(|&v| v < 0.0) {
            return Err(bad(format!("tensor '{name}' holds a negative variance")));
        }
        Ok(())
    };
    for spec in &specs {
        let r = spec.range();
        read(&spec.name, &spec.shape, &mut vae.params.data[r.clone()])?;
        if state.adam_t > 0 {
            read(
                &format!("optimizer.m.{}", spec.name),
                &spec.shape,
                &mut adam.m[r.clone()],
            )?;
            read(
                &format!("optimizer.v.{}", spec.name),
                &spec.shape,
                &mut adam.v[r],
            )?;
        }
    }
    if tensors.len() > specs.len() * 3 {
        return Err(bad(
            "holds tensors the config does not describe: another architecture?".into(),
        ));
    }
    Ok(Checkpoint {
        config,
        vae,
        adam,
        state,
    })
}

/// Loads the newest readable checkpoint of a run, falling back to the previous one with a message.
pub fn load_run(dir: &Path) -> Result<Checkpoint> {
    load_run_stamped(dir).map(|(c, _)| c)
}

/// The data file a front end hands over to a run (Python's arrays), kept in the run directory.
pub const KEPT_DATA: &str = "arrays.npz";

/// Data a run keeps in its own folder (Python's arrays) is read from the folder the run is in now, so a run
/// moved or copied elsewhere reads its own copy, not the one where it was trained.
pub fn own_data(cfg: &mut RunConfig, dir: &Path) {
    let kept = KEPT_DATA;
    if let Some(spec) = cfg.train.data.as_mut()
        && spec.path.file_name().is_some_and(|n| n == kept)
        && dir.join(kept).is_file()
        && let Ok(here) = std::path::absolute(dir.join(kept))
    {
        spec.path = here;
    }
}

/// [`load_run`], with the [`Stamp`] of the checkpoint it loaded.
pub fn load_run_stamped(dir: &Path) -> Result<(Checkpoint, Stamp)> {
    if !dir.is_dir() {
        let reason = if dir.exists() {
            "a file, not a run directory: give the folder that training wrote"
        } else {
            "no such run directory"
        };
        return Err(Error::Checkpoint {
            path: dir.to_path_buf(),
            reason: reason.into(),
        });
    }
    let newest = dir.join(CHECKPOINT);
    let previous = dir.join(PREVIOUS);
    let first = load_file(&newest).map(|(mut c, stamp)| {
        own_data(&mut c.config, dir);
        (c, stamp)
    });
    match first {
        Ok(c) => Ok(c),
        Err(e) if previous.exists() => {
            let mut c = load_file(&previous)
                .map_err(|p| Error::Config(format!("{e}; and the previous checkpoint: {p}")))?;
            own_data(&mut c.0.config, dir);
            if std::fs::symlink_metadata(&newest).is_err() {
                crate::notes::say!(
                    "elbo: warning: {} is missing; using the previous checkpoint {}",
                    newest.display(),
                    previous.display()
                );
            } else {
                crate::notes::say!(
                    "elbo: warning: {e}; using the previous checkpoint {}",
                    previous.display()
                );
            }
            Ok(c)
        }
        Err(_)
            if std::fs::symlink_metadata(&newest).is_err() && dir.join("config.json").is_file() =>
        {
            Err(Error::Checkpoint {
                path: dir.to_path_buf(),
                reason: format!(
                    "this run has no checkpoint yet (its training is starting, or stopped before its first save): wait, or continue it with 'elbo train --resume {}'",
                    dir.display()
                ),
            })
        }
        Err(e) => Err(e),
    }
}

/// The epoch of the newest checkpoint of `dir` that loads, without messages; for saying what a failure kept.
pub fn newest_epoch(dir: &Path) -> Option<usize> {
    [CHECKPOINT, PREVIOUS]
        .iter()
        .find_map(|f| load_file(&dir.join(f)).ok())
        .map(|(c, _)| c.state.epoch)
}

/// Largest checkpoint read: the largest model's weights and two Adam moments, plus room for the metadata.
const MAX_CHECKPOINT: u64 = 3 * 4 * (crate::model::config::MAX_PARAMS as u64) + (64 << 20);

/// Loads the checkpoint in the file `path` (no fallback to another), with its stamp.
pub fn load_file(path: &Path) -> Result<(Checkpoint, Stamp)> {
    if std::fs::symlink_metadata(path).is_err() {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            reason: "no checkpoint here: is this a run directory written by 'elbo train'?".into(),
        });
    }
    // A FIFO or device would block or never end: only regular files of a checkpoint's size are read.
    let limit = MAX_CHECKPOINT.min(crate::resources::available_memory());
    let bytes = crate::fsutil::read_regular(path, limit, "a checkpoint")?;
    let ck = from_bytes(&bytes, path)?;
    // from_bytes has read the same header, so this cannot fail on bytes it accepted.
    let stamp = header_len(&bytes, bytes.len() as u64)
        .and_then(|n| stamp_of(&bytes[8..8 + n]))
        .map_err(|reason| Error::Checkpoint {
            path: path.to_path_buf(),
            reason,
        })?;
    Ok((ck, stamp))
}

/// Which checkpoint a file holds, as its header says: the epoch and the checksum over its metadata and tensors.
/// Two checkpoints with equal stamps hold the same weights (as far as md5 tells).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// Epochs completed.
    pub epoch: usize,
    /// The checksum stored in the metadata.
    pub checksum: String,
}

/// Largest safetensors header read for a stamp; safetensors itself refuses headers over 100 MB.
const MAX_HEADER: usize = 100 << 20;

/// The length of the JSON header after the first 8 bytes (`first`) of a file of `size` bytes.
fn header_len(first: &[u8], size: u64) -> std::result::Result<usize, String> {
    let n = first
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or("shorter than a safetensors header: it is damaged or still being written")?;
    if n > size.saturating_sub(8) || n > MAX_HEADER as u64 {
        return Err(format!(
            "its header claims {n} bytes, more than the file holds: it is damaged or still being written"
        ));
    }
    Ok(n as usize)
}

/// The stamp in a checkpoint's JSON header.
fn stamp_of(header: &[u8]) -> std::result::Result<Stamp, String> {
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__")]
        meta: Option<HashMap<String, String>>,
    }
    #[derive(serde::Deserialize)]
    struct State {
        epoch: usize,
    }
    let h: Header = serde_json::from_slice(header)
        .map_err(|e| format!("not a safetensors file (its header: {e})"))?;
    let meta = h.meta.unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(format!("not an elbo checkpoint (expected format {FORMAT})"));
    }
    let get = |k: &str| meta.get(k).ok_or(format!("metadata has no '{k}'"));
    let state: State = serde_json::from_str(get("state")?)
        .map_err(|e| format!("bad training state in metadata: {e}"))?;
    Ok(Stamp {
        epoch: state.epoch,
        checksum: get("checksum")?.clone(),
    })
}

/// The stamp of the checkpoint file `path`, reading only its header: cheap enough to ask on every poll. The
/// tensors are not checked; [`load_file`] does that.
pub fn stamp(path: &Path) -> Result<Stamp> {
    use std::io::Read;
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = crate::fsutil::open_regular(path, MAX_CHECKPOINT, "a checkpoint")?;
    let size = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut first = [0u8; 8];
    let n = match f.read_exact(&mut first) {
        Ok(()) => header_len(&first, size).map_err(bad)?,
        Err(_) => return Err(bad(header_len(&[], size).unwrap_err())),
    };
    let mut header = vec![0u8; n];
    f.read_exact(&mut header).map_err(|e| {
        bad(format!(
            "cannot read its header ({e}): it is damaged or still being written"
        ))
    })?;
    stamp_of(&header).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use crate::train::TrainConfig;
    use rand::SeedableRng;

    fn sample_bytes() -> (Vec<u8>, RunConfig) {
        bytes_at(1)
    }

    fn bytes_at(epoch: usize) -> (Vec<u8>, RunConfig) {
        let mut model = ModelConfig::pytorch_example();
        model.hidden = vec![8];
        model.latent = 2;
        let config = RunConfig {
            model: model.clone(),
            train: TrainConfig::default(),
            data: Default::default(),
        };
        let vae = Vae::<f32>::new(model, &mut rand_pcg::Pcg64Mcg::seed_from_u64(1));
        let adam = Adam::new(vae.params.len(), 1e-8);
        let state = TrainState {
            epoch,
            adam_t: 0,
            data_rng: rand_pcg::Pcg64Mcg::seed_from_u64(2),
            noise_rng: rand_pcg::Pcg64Mcg::seed_from_u64(3),
            history: vec![],
        };
        (
            to_bytes(&config, &vae.params, &adam, &state).unwrap(),
            config,
        )
    }

    #[test]
    fn round_trip_and_damage_detection() {
        let (bytes, config) = sample_bytes();
        let ck = from_bytes(&bytes, Path::new("c")).unwrap();
        assert_eq!(ck.config, config);
        // Flip one bit in the last tensor's data: the file still parses, only the checksum can tell.
        let mut damaged = bytes.clone();
        let last = damaged.len() - 3;
        damaged[last] ^= 0x01;
        let err = from_bytes(&damaged, Path::new("c"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn batch_norm_running_statistics_survive_a_round_trip() {
        let mut model = ModelConfig::pytorch_example();
        (model.hidden, model.latent, model.batch_norm) = (vec![8], 2, true);
        model.conv = vec![crate::model::ConvSpec::halving(4)];
        let config = RunConfig {
            model: model.clone(),
            train: TrainConfig::default(),
            data: Default::default(),
        };
        let mut vae = Vae::<f32>::new(model, &mut rand_pcg::Pcg64Mcg::seed_from_u64(1));
        let stats: Vec<_> = vae
            .params
            .specs
            .iter()
            .filter(|s| s.buffer)
            .cloned()
            .collect();
        assert!(
            stats.iter().any(|s| s.name.ends_with("running_var")),
            "{stats:?}"
        );
        for (k, s) in stats.iter().enumerate() {
            for (i, v) in vae.params.data[s.range()].iter_mut().enumerate() {
                *v = 0.5 + k as f32 + i as f32 / 8.0;
            }
        }
        let adam = Adam::new(vae.params.len(), 1e-8);
        let state = TrainState {
            epoch: 1,
            adam_t: 1,
            data_rng: rand_pcg::Pcg64Mcg::seed_from_u64(2),
            noise_rng: rand_pcg::Pcg64Mcg::seed_from_u64(3),
            history: vec![],
        };
        let bytes = to_bytes(&config, &vae.params, &adam, &state).unwrap();
        let ck = from_bytes(&bytes, Path::new("c")).unwrap();
        for s in &stats {
            assert_eq!(
                ck.vae.params.data[s.range()],
                vae.params.data[s.range()],
                "{}",
                s.name
            );
        }
        assert_eq!(ck.vae.params.data, vae.params.data);
    }

    #[test]
    fn falls_back_to_the_previous_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let (bytes, _) = sample_bytes();
        std::fs::write(tmp.path().join(PREVIOUS), &bytes).unwrap();
        let mut damaged = bytes.clone();
        let last = damaged.len() - 3;
        damaged[last] ^= 0x80;
        std::fs::write(tmp.path().join(CHECKPOINT), &damaged).unwrap();
        let ck = load_run(tmp.path()).unwrap();
        assert_eq!(ck.state.epoch, 1);
        std::fs::write(tmp.path().join(PREVIOUS), &damaged).unwrap();
        assert!(
            load_run(tmp.path())
                .unwrap_err()
                .to_string()
                .contains("checksum mismatch")
        );
    }

    /// A stamp read from the header alone names the checkpoint the full load reads, and a file cut short (as
    /// one being written by something other than `save` would be) is named as such, never mistaken for one.
    #[test]
    fn stamps_read_the_header_only_and_match_the_full_load() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(CHECKPOINT);
        let (bytes, _) = bytes_at(3);
        std::fs::write(&path, &bytes).unwrap();
        let s = stamp(&path).unwrap();
        let (ck, loaded) = load_file(&path).unwrap();
        assert_eq!((s.epoch, ck.state.epoch), (3, 3));
        assert_eq!(s, loaded);
        assert_ne!(s, {
            std::fs::write(&path, bytes_at(4).0).unwrap();
            stamp(&path).unwrap()
        });
        for cut in [0, 5, 8, 100] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let e = stamp(&path).unwrap_err().to_string();
            assert!(e.contains("still being written"), "{cut}: {e}");
        }
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        // The header whole, the tensors missing: the stamp reads, the load refuses.
        std::fs::write(&path, &bytes[..8 + n]).unwrap();
        assert_eq!(stamp(&path).unwrap().epoch, 3);
        assert!(load_file(&path).is_err());
        std::fs::write(&path, b"\x02\0\0\0\0\0\0\0{}").unwrap();
        let e = stamp(&path).unwrap_err().to_string();
        assert!(e.contains("not an elbo checkpoint"), "{e}");
    }

    fn epoch_of(path: &Path) -> Option<usize> {
        let bytes = std::fs::read(path).ok()?;
        Some(from_bytes(&bytes, path).ok()?.state.epoch)
    }

    fn temp_files(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    /// Fails, then kills, every step of a save in turn, from each starting state (no checkpoint yet, one,
    /// and one with its previous): every outcome leaves the newest checkpoint loadable, a failure changes
    /// nothing and leaves no temporary file, and the next save succeeds.
    #[test]
    fn every_step_of_a_save_can_fail_or_be_killed() {
        use crate::fault::plan::{Fault, arm, seen};
        let mut covered = std::collections::BTreeSet::new();
        let mut cases = 0;
        for existing in 0..=2usize {
            // Count the steps of an undisturbed save from this state.
            let steps = {
                let tmp = tempfile::tempdir().unwrap();
                for e in 1..=existing {
                    publish(tmp.path(), &bytes_at(e).0).unwrap();
                }
                arm(None);
                publish(tmp.path(), &bytes_at(existing + 1).0).unwrap();
                seen()
            };
            assert_eq!(steps.len(), if existing == 0 { 4 } else { 6 }, "{steps:?}");
            for (k, step) in steps.iter().enumerate() {
                for fault in [Fault::Fail, Fault::Kill] {
                    let tmp = tempfile::tempdir().unwrap();
                    let dir = tmp.path();
                    arm(None);
                    for e in 1..=existing {
                        publish(dir, &bytes_at(e).0).unwrap();
                    }
                    let before = (
                        epoch_of(&dir.join(CHECKPOINT)),
                        epoch_of(&dir.join(PREVIOUS)),
                    );
                    arm(Some((k, fault)));
                    let new = existing + 1;
                    assert!(publish(dir, &bytes_at(new).0).is_err(), "{step} {fault:?}");
                    arm(None);
                    let after = (
                        epoch_of(&dir.join(CHECKPOINT)),
                        epoch_of(&dir.join(PREVIOUS)),
                    );
                    let why = format!(
                        "{fault:?} at '{step}' with {existing} checkpoints: {before:?} -> {after:?}"
                    );
                    match fault {
                        // A failed save reports an error and changes nothing, except that the previous
                        // checkpoint may already equal the current one; it leaves no temporary file.
                        Fault::Fail => {
                            assert_eq!(after.0, before.0, "{why}");
                            assert!(after.1 == before.1 || after.1 == before.0, "{why}");
                            assert!(temp_files(dir).is_empty(), "{why}: {:?}", temp_files(dir));
                        }
                        // A kill leaves the old or the new checkpoint, never none once one existed.
                        Fault::Kill => {
                            assert!(after.0 == before.0 || after.0 == Some(new), "{why}");
                        }
                    }
                    if existing > 0 {
                        assert!(load_run(dir).is_ok(), "{why}");
                        assert!(after.1.is_none() || after.1 < Some(new), "{why}");
                    }
                    // The next save, as a resumed run would make it, succeeds and cleans up.
                    publish(dir, &bytes_at(new + 1).0).unwrap();
                    assert_eq!(load_run(dir).unwrap().state.epoch, new + 1, "{why}");
                    assert!(
                        temp_files(dir)
                            .iter()
                            .all(|n| !n.contains(&std::process::id().to_string())),
                        "{why}: {:?}",
                        temp_files(dir)
                    );
                    covered.insert((existing, *step, fault == Fault::Kill));
                    cases += 1;
                }
            }
        }
        // 4 steps from an empty folder and 6 from each of the two other states, each failed and killed.
        assert_eq!(cases, 2 * (4 + 6 + 6));
        assert_eq!(covered.len(), cases);
    }
}
