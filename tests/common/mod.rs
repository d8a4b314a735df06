//! Shared helpers for the integration tests: the binary, a trained fixture run, and a loopback HTTP server.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

/// The `elbo` binary, with no mirror override so real-data tests use the user's path.
pub fn elbo() -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(env!("CARGO_BIN_EXE_elbo"));
    c.env_remove("ELBO_MIRROR");
    // Ctrl-C and SIGTERM as a terminal delivers them: a test suite started as a background job of a script inherits
    // them ignored, and elbo keeps a signal it was told to ignore, so the interruption tests would test nothing.
    // SAFETY: between fork and exec only the async-signal-safe `signal` runs.
    unsafe {
        c.pre_exec(|| {
            for s in [libc::SIGINT, libc::SIGTERM] {
                if libc::signal(s, libc::SIG_DFL) == libc::SIG_ERR {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    c
}

/// Runs a command and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("elbo runs")
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a user error: exit code 1, no panic, and an `elbo: error:` line containing `needle`.
pub fn assert_user_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1, stderr: {err}");
    assert!(
        !err.contains("panicked"),
        "panic instead of an error: {err}"
    );
    let line = err
        .lines()
        .find(|l| l.starts_with("elbo: error:"))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(
        line.contains(needle),
        "error line {line:?} lacks {needle:?}"
    );
}

/// The folder holding the real MNIST files, downloading them into the cache once if needed.
pub fn mnist_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = elbo::data::resolve_data_dir(elbo::data::DatasetName::Mnist, None);
        elbo::data::load_dataset(elbo::data::DatasetName::Mnist, &dir).expect("MNIST is available");
        dir
    })
    .clone()
}

/// A run trained once per test binary: default architecture, 6000 images, 5 epochs.
pub fn fixture_run() -> PathBuf {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let o = run(elbo()
            .args([
                "train",
                "--epochs",
                "5",
                "--limit",
                "6000",
                "--threads",
                "2",
                "--out",
            ])
            .arg(&dir)
            .arg("--data-dir")
            .arg(mnist_dir()));
        assert!(
            o.status.success(),
            "fixture training failed: {}",
            stderr(&o)
        );
        (tmp, dir)
    })
    .1
    .clone()
}

/// Serves `files` (path → bytes) over HTTP on 127.0.0.1 until the process ends; returns the base URL.
pub fn serve(files: HashMap<String, Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let files = Arc::new(files);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let files = files.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let path = request
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let response = match files.get(path) {
                    Some(body) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(body);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = stream.write_all(&response);
            });
        }
    });
    format!("http://{addr}/")
}

/// The four real MNIST files by name.
pub fn mnist_files() -> HashMap<String, Vec<u8>> {
    let dir = mnist_dir();
    elbo::data::named::FILE_NAMES
        .iter()
        .map(|n| {
            (
                n.to_string(),
                std::fs::read(dir.join(n)).expect("real MNIST .gz files"),
            )
        })
        .collect()
}

/// Copies the real MNIST files into `dir`.
pub fn copy_mnist(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in mnist_files() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A `.npy` file of `data` (u8, f32, …) in C order.
pub fn npy<T: npyz::AutoSerialize>(shape: &[u64], data: impl IntoIterator<Item = T>) -> Vec<u8> {
    use npyz::WriterBuilder;
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut buf)
        .begin_nd()
        .unwrap();
    w.extend(data).unwrap();
    w.finish().unwrap();
    buf
}

/// An `.npz` of the named `.npy` byte strings (each member named `NAME.npy`, as `numpy.savez` names them).
pub fn npz(path: &Path, arrays: &[(&str, Vec<u8>)]) {
    let named: Vec<(String, Vec<u8>)> = arrays
        .iter()
        .map(|(n, b)| (format!("{n}.npy"), b.clone()))
        .collect();
    zip_of(
        path,
        &named
            .iter()
            .map(|(n, b)| (&n[..], b.clone()))
            .collect::<Vec<_>>(),
    );
}

/// A zip whose members are named exactly as given.
pub fn zip_of(path: &Path, members: &[(&str, Vec<u8>)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in members {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

/// A running `elbo serve`, stopped (SIGKILL) when dropped unless already stopped.
pub struct Served {
    /// The server process.
    pub child: std::process::Child,
    /// Its base address, `http://127.0.0.1:PORT/`.
    pub url: String,
    /// Where its standard error goes.
    pub stderr: PathBuf,
}

impl Served {
    /// Sends `signal` and waits at most `limit` for the server to exit; returns its status.
    pub fn stop_with(
        &mut self,
        signal: i32,
        limit: std::time::Duration,
    ) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let t = std::time::Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                t.elapsed() < limit,
                "still running {limit:?} after signal {signal}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `elbo serve RUN --port 0 ARGS` and waits for the address it prints.
pub fn serve_run(run_dir: &Path, args: &[&str]) -> Served {
    let err = tempfile::NamedTempFile::new()
        .unwrap()
        .into_temp_path()
        .keep()
        .unwrap();
    let mut child = elbo()
        .arg("serve")
        .arg(run_dir)
        .args(["--port", "0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("elbo serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("http://127.0.0.1:"),
        "no address printed: {line:?}; stderr: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    Served {
        child,
        url: line.trim().to_string(),
        stderr: err,
    }
}

/// One HTTP/1.1 exchange over a fresh connection: sends `request` as is, returns the status (0 when the server
/// closed without answering) and the body.
pub fn exchange(url: &str, request: &[u8]) -> (u16, String) {
    exchange_then(url, request, false)
}

/// [`exchange`], closing the sending half after the request when `hang_up` (bytes that may not end a request).
pub fn exchange_then(url: &str, request: &[u8], hang_up: bool) -> (u16, String) {
    exchange_within(url, request, hang_up, 10)
}

/// [`exchange_then`], waiting up to `secs` seconds for the answer.
pub fn exchange_within(url: &str, request: &[u8], hang_up: bool, secs: u64) -> (u16, String) {
    use std::io::Read;
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(secs)))
        .unwrap();
    let _ = s.write_all(request);
    if hang_up {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `GET path` with a proper Host header.
pub fn get(url: &str, path: &str) -> (u16, String) {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    exchange(
        url,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// A checkpoint's tensors without its header (which names the run's folder and times): equal for equal weights.
#[allow(dead_code)]
pub fn checkpoint_tensors(dir: &Path) -> Vec<u8> {
    let bytes = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + n..].to_vec()
}

/// Asserts that `elbo train` with `flags` (on 100 MNIST images, one epoch, into `out`) is refused with a message
/// containing `why`, and writes nothing.
pub fn assert_train_refused(out: &Path, flags: &[&str], why: &str) {
    let mut cmd = elbo();
    cmd.args(["train", "--limit", "100", "--epochs", "1"])
        .args(flags)
        .arg("--out")
        .arg(out);
    // A run on its own --data refuses a --data-dir (which it would not read) before anything else.
    if !flags.contains(&"--data") {
        cmd.arg("--data-dir").arg(mnist_dir());
    }
    let o = run(&mut cmd);
    assert_user_error(&o, why);
    assert!(!out.exists(), "{flags:?}: a refusal writes nothing");
}

/// Asserts what importance sampling promises, from `elbo eval --json` at K = 1, a few and many samples: one sample is
/// the ELBO in expectation (within 5 %), and more samples tighten the bound below the −ELBO.
pub fn assert_importance_sampling_tightens(
    one: &serde_json::Value,
    few: &serde_json::Value,
    many: &serde_json::Value,
) {
    let nll = |v: &serde_json::Value| v["nll"].as_f64().unwrap();
    let neg_elbo = many["neg_elbo"].as_f64().unwrap();
    assert!(
        nll(many) < nll(few) && nll(few) < nll(one),
        "{one} {few} {many}"
    );
    assert!(nll(many) < neg_elbo, "{many}");
    assert!(
        (nll(one) - neg_elbo).abs() < 0.05 * neg_elbo,
        "{one} vs {neg_elbo}"
    );
}

/// Resumes the run in `halves` with `elbo train --resume` to `epochs` and asserts that its checkpoint (weights and
/// Adam's moments) equals that of `whole`, trained to `epochs` in one go; `what` names what must survive.
pub fn assert_resumes_to(whole: &Path, halves: &Path, epochs: &str, what: &str) {
    let o = run(elbo()
        .args(["train", "--resume"])
        .arg(halves)
        .args(["--epochs", epochs, "--data-dir"])
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        checkpoint_tensors(whole) == checkpoint_tensors(halves),
        "{what}"
    );
}

/// `elbo eval RUN --k K --limit 200 --json` on MNIST, asserted to succeed, as JSON.
pub fn eval_json(dir: &Path, k: usize) -> serde_json::Value {
    let o = run(elbo()
        .arg("eval")
        .arg(dir)
        .args(["--k", &k.to_string(), "--limit", "200", "--json"])
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `elbo NAME RUN ARGS…` with MNIST's folder in the environment.
pub fn run_on(dir: &Path, name: &str, args: &[&str]) -> Output {
    run(elbo()
        .arg(name)
        .arg(dir)
        .args(args)
        .env("ELBO_DATA_DIR", mnist_dir()))
}

/// An .npy header with the given dictionary text, padded as NumPy pads it.
pub fn raw_npy(dict: &str, payload: &[u8]) -> Vec<u8> {
    let mut header = dict.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(payload);
    b
}

/// Runs `cmd` with its output captured, calls `meanwhile` with its PID after `ms` milliseconds, then sends it
/// Ctrl-C (SIGINT) and returns what it printed.
/// Waits (up to a minute) until process `pid` has a handler for `signal`, as /proc's `SigCgt` mask shows.
pub fn wait_until_catching(pid: u32, signal: i32) {
    let start = std::time::Instant::now();
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok());
        if status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
        {
            return;
        }
        match caught {
            Some(mask) if mask & (1 << (signal - 1)) != 0 => return,
            // Gone, or a zombie: whatever it printed is the test's to read.
            None => return,
            _ => {}
        }
        assert!(
            start.elapsed().as_secs() < 60,
            "process {pid} never caught signal {signal}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub fn interrupted_after(cmd: &mut Command, ms: u64, meanwhile: impl FnOnce(u32)) -> Output {
    let child = cmd
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Counted from when the command catches SIGINT: on a loaded machine loading alone can take seconds, and a
    // signal before the handler is installed is a different case (the process dies as any would).
    wait_until_catching(child.id(), libc::SIGINT);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    meanwhile(child.id());
    // SAFETY: signalling our own child by its PID.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let signalled = std::time::Instant::now();
    let o = child.wait_with_output().unwrap();
    // A stop comes between chunks of work, not after whatever long unit is under way (an item at K = 1e6).
    assert!(
        signalled.elapsed().as_secs() < 10,
        "stopped {:?} after the signal",
        signalled.elapsed()
    );
    o
}
