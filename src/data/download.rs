//! Fetching dataset files from public mirrors, verified against published md5 sums.

use crate::error::{Error, Result};
use md5::{Digest, Md5};
use std::io::Read;
use std::path::Path;

/// No dataset file is larger than this; a server sending more is cut off.
#[cfg(feature = "download")]
const MAX_DOWNLOAD: u64 = 256 << 20;

/// Whether this build fetches missing dataset files (the `download` feature).
pub const ENABLED: bool = cfg!(feature = "download");

/// A file to fetch and the md5 it must have.
#[derive(Debug, Clone)]
pub struct RemoteFile {
    /// File name, appended to a mirror's base address.
    pub name: String,
    /// Expected md5 of the bytes, lowercase hex.
    pub md5: String,
}

/// The mirrors for a dataset: `$ELBO_MIRROR` (one base address) if set, else the dataset's public ones.
pub fn mirrors_for(public: &[&str]) -> Vec<String> {
    match std::env::var("ELBO_MIRROR") {
        Ok(m) if !m.is_empty() => vec![m],
        _ => public.iter().map(|s| s.to_string()).collect(),
    }
}

/// Only HTTPS, except plain HTTP to this machine (a local mirror or a test server).
#[cfg_attr(not(feature = "download"), allow(dead_code))]
fn allowed(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// Lowercase hex md5 of a file.
pub fn md5_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Downloads each file into `dir`, trying mirrors in order; a file is only renamed into place once its md5 matches.
#[cfg(feature = "download")]
pub fn fetch_all(files: &[RemoteFile], dir: &Path, mirrors: &[String]) -> Result<()> {
    use std::time::Duration;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    for file in files {
        let mut failures = Vec::new();
        let mut done = false;
        for base in mirrors {
            let url = format!("{}/{}", base.trim_end_matches('/'), file.name);
            match fetch_one(&agent, &url, file, dir) {
                Ok(()) => {
                    done = true;
                    break;
                }
                Err(reason) => {
                    crate::notes::say!("elbo: {url}: {reason}");
                    failures.push(format!("{url} ({reason})"));
                }
            }
        }
        if !done {
            return Err(Error::Download {
                url: failures.join("; "),
                reason: format!(
                    "no mirror gave {} with md5 {}; fetch it by hand into {}",
                    file.name,
                    file.md5,
                    dir.display()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(feature = "download")]
fn fetch_one(agent: &ureq::Agent, url: &str, file: &RemoteFile, dir: &Path) -> Result<(), String> {
    use std::io::Write;
    if !allowed(url) {
        return Err("refused: only https:// addresses are used for downloads".into());
    }
    crate::notes::say!("elbo: downloading {url}");
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let part = dir.join(format!("{}.part", file.name));
    let result = (|| {
        let mut out =
            std::fs::File::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
        let mut reader = response.body_mut().as_reader().take(MAX_DOWNLOAD + 1);
        let mut hasher = Md5::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > MAX_DOWNLOAD {
                return Err(format!("larger than {MAX_DOWNLOAD} bytes"));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| format!("{}: {e}", part.display()))?;
        }
        out.sync_all()
            .map_err(|e| format!("{}: {e}", part.display()))?;
        let got = format!("{:x}", hasher.finalize());
        if got != file.md5 {
            return Err(format!(
                "checksum mismatch: md5 {got}, expected {}; the download was removed",
                file.md5
            ));
        }
        std::fs::rename(&part, dir.join(&file.name)).map_err(|e| format!("{}: {e}", part.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

/// Without the `download` feature nothing is fetched: the caller's message says where to put the files.
#[cfg(not(feature = "download"))]
pub fn fetch_all(files: &[RemoteFile], _dir: &Path, _mirrors: &[String]) -> Result<()> {
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    Err(Error::Download {
        url: names.join(", "),
        reason: "this build of elbo does not download (its `download` feature is off)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn only_https_or_loopback() {
        assert!(allowed("https://example.org/a.gz"));
        assert!(allowed("http://127.0.0.1:8080/a.gz"));
        assert!(allowed("http://localhost/a.gz"));
        assert!(!allowed("http://example.org/a.gz"));
        assert!(!allowed("http://127.0.0.1.evil.org/a.gz"));
        assert!(!allowed("ftp://example.org/a.gz"));
    }

    /// A library built without the `download` feature fetches nothing, creates nothing, and says why; the
    /// caller's message then says where to put the files (`.ci/run` runs this in that configuration).
    #[cfg(not(feature = "download"))]
    #[test]
    fn without_the_feature_nothing_is_fetched_and_the_message_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mnist");
        let file = super::RemoteFile {
            name: "a.gz".into(),
            md5: "0".repeat(32),
        };
        let e = super::fetch_all(&[file], &dir, &["http://127.0.0.1:9/".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.gz") && e.contains("`download` feature is off"),
            "{e}"
        );
        assert!(!dir.exists());
    }
}
