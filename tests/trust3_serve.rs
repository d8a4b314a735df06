//! `elbo serve` against a hostile or careless user: arguments checked before the run is opened, the epoch it
//! shows and the reload of a newer checkpoint (a damaged one keeps the old weights), the Host allow-list on
//! every bound address, and requests from pages of other origins.

mod common;
use common::*;
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A small 2-D run trained for one epoch, in its own folder (the reload test trains it further).
fn small_run(dir: &Path) -> PathBuf {
    let run_dir = dir.join("run");
    let o = run(elbo()
        .args([
            "train", "--epochs", "1", "--limit", "600", "--latent", "2", "--out",
        ])
        .arg(&run_dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    run_dir
}

/// `elbo serve RUN --port 0 ARGS`, and the address it prints, whatever host it names.
fn serve_at(run_dir: &Path, args: &[&str]) -> Served {
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
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("http://"),
        "no address printed: {line:?}; stderr: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    Served {
        child,
        url: line.trim().to_string(),
        stderr: err,
    }
}

fn port(url: &str) -> String {
    url.trim_end_matches('/').rsplit(':').next().unwrap().into()
}

/// `METHOD path` with the Host header `host` and `extra` header lines; the status, headers and body.
fn ask(url: &str, method: &str, path: &str, host: &str, extra: &str) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let host = if host.is_empty() {
        String::new()
    } else {
        format!("Host: {host}\r\n")
    };
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\n{host}{extra}Connection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head, out[(split + 4).min(out.len())..].to_vec())
}

fn own_host(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

fn info(url: &str) -> Value {
    let (s, _, body) = ask(url, "GET", "/api/info", &own_host(url), "");
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn decode(url: &str) -> Vec<u8> {
    let (s, _, body) = ask(url, "GET", "/api/decode?z=0.7,-0.4", &own_host(url), "");
    assert_eq!(s, 200);
    body
}

fn reload(url: &str) -> (u16, String) {
    let (s, _, body) = ask(url, "POST", "/api/reload", &own_host(url), "");
    (s, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn serve_checks_every_argument_before_opening_the_run() {
    // The run does not exist: each mistake is named before that is noticed.
    let missing = Path::new("/nonexistent/elbo-run");
    for (args, why) in [
        (
            &["--points", "20001"][..],
            "--points 20001 must be between 1 and 20000",
        ),
        (&["--points", "0"][..], "--points 0 must be between"),
        (
            &["--allow-host", "evil .com"][..],
            "--allow-host 'evil .com' is not a host name",
        ),
        (&["--allow-host", "0.0.0.0"][..], "--allow-host 0.0.0.0"),
        (&["--allow-host", "*"][..], "--allow-host '*'"),
    ] {
        let o = run(elbo().arg("serve").arg(missing).args(args));
        assert_user_error(&o, why);
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = taken.local_addr().unwrap().port().to_string();
    let o = run(elbo().arg("serve").arg(missing).args(["--port", &p]));
    assert_user_error(&o, "pick another --port");
    // An address this machine does not have (TEST-NET-1, never assigned) is named as the problem, not the port.
    let o = run(elbo()
        .arg("serve")
        .arg(missing)
        .args(["--host", "192.0.2.1", "--port", "0"]));
    assert_user_error(&o, "--host 192.0.2.1 is not an address of this machine");
    // A name is not looked up; localhost is this machine's loopback address.
    let o = run(elbo()
        .arg("serve")
        .arg(missing)
        .args(["--host", "example.com"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("'example.com' is not an IP address"),
        "{}",
        stderr(&o)
    );
    let o = run(elbo()
        .arg("serve")
        .arg(missing)
        .args(["--host", "localhost", "--port", "0"]));
    assert_user_error(&o, "no such run directory");
}

#[test]
fn serve_shows_its_epoch_and_reloads_a_newer_checkpoint_only_when_it_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = small_run(tmp.path());
    let srv = serve_run(&run_dir, &["--points", "200"]);
    let err = std::fs::read_to_string(&srv.stderr).unwrap();
    assert!(err.contains("(epoch 1)"), "{err}");
    let first = info(&srv.url);
    assert_eq!(first["epoch"], 1);
    assert!(
        first["saved"].is_null() && first["problem"].is_null(),
        "{first}"
    );
    let (s, body) = reload(&srv.url);
    assert_eq!(s, 200, "nothing newer: a reload changes nothing: {body}");
    let old = decode(&srv.url);

    // Training goes on while the server runs: the newer checkpoint is noticed, not yet shown.
    let o = run(elbo()
        .args(["train", "--epochs", "2", "--resume"])
        .arg(&run_dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let now = info(&srv.url);
    assert_eq!(now["epoch"], 1);
    assert_eq!(now["saved"]["epoch"], 2, "{now}");
    assert_eq!(decode(&srv.url), old);

    // A damaged newer checkpoint: said before any reload (not offered as a new epoch), the reload refused; the
    // old weights stay.
    let ck = run_dir.join("checkpoint.safetensors");
    let good = std::fs::read(&ck).unwrap();
    let mut bad = good.clone();
    let at = bad.len() - 5;
    bad[at] ^= 0x10;
    std::fs::write(&ck, &bad).unwrap();
    let now = info(&srv.url);
    assert!(now["saved"].is_null(), "{now}");
    let problem = now["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("checksum") && problem.contains("still showing epoch 1"),
        "{now}"
    );
    let (s, body) = reload(&srv.url);
    assert_eq!(s, 409, "{body}");
    assert!(
        body.contains("checksum mismatch") && body.contains("still showing epoch 1"),
        "{body}"
    );
    let now = info(&srv.url);
    assert_eq!(now["epoch"], 1);
    assert!(
        now["problem"].as_str().unwrap().contains("checksum"),
        "{now}"
    );
    assert_eq!(decode(&srv.url), old);
    // A digit of the header's own epoch changed: not offered as epoch 3 (the checksum covers the metadata).
    let text = String::from_utf8_lossy(&good).into_owned();
    let i = text
        .find("\\\"epoch\\\":2")
        .expect("the header's state holds the epoch");
    let mut header_bad = good.clone();
    header_bad[i + text[i..].find('2').unwrap()] = b'3';
    std::fs::write(&ck, &header_bad).unwrap();
    let now = info(&srv.url);
    assert!(now["saved"].is_null(), "{now}");
    assert!(!now["problem"].is_null(), "{now}");
    // One cut short (as if caught mid-write): the same.
    std::fs::write(&ck, &good[..good.len() / 2]).unwrap();
    assert_eq!(reload(&srv.url).0, 409);
    assert_eq!(info(&srv.url)["epoch"], 1);
    assert_eq!(decode(&srv.url), old);

    // The good one back: reloading shows it, and requests in flight meanwhile get the old answer or the new,
    // never a failure.
    std::fs::write(&ck, &good).unwrap();
    let now = info(&srv.url);
    assert!(
        now["problem"].is_null(),
        "a fixed file drops the old failure: {now}"
    );
    let url = srv.url.clone();
    let hammer = std::thread::spawn(move || {
        let t = Instant::now();
        let mut seen = Vec::new();
        while t.elapsed() < Duration::from_secs(2) {
            let d = decode(&url);
            if !seen.contains(&d) {
                seen.push(d);
            }
        }
        seen
    });
    std::thread::sleep(Duration::from_millis(300));
    let (s, body) = reload(&srv.url);
    assert_eq!(s, 200, "{body}");
    let answered: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answered["epoch"], 2);
    let new = decode(&srv.url);
    assert_ne!(new, old, "the reloaded weights decode differently");
    let seen = hammer.join().unwrap();
    assert!(
        seen.iter().all(|d| *d == old || *d == new),
        "{} distinct answers",
        seen.len()
    );
    let now = info(&srv.url);
    assert_eq!(now["epoch"], 2);
    assert!(now["saved"].is_null(), "{now}");
    assert_ne!(now["weights"], first["weights"]);
    // The shown checkpoint damaged on disk after its header: the header still matches, so only reading the
    // file whole tells (the same flipped byte as above, now in the shown epoch's file); the page says so and the
    // weights stay.
    std::fs::write(&ck, &bad).unwrap();
    let now = info(&srv.url);
    assert!(now["saved"].is_null(), "{now}");
    let problem = now["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("checksum") && problem.contains("still showing epoch 2"),
        "{now}"
    );
    assert_eq!(decode(&srv.url), new);
    std::fs::write(&ck, &good).unwrap();
    assert!(info(&srv.url)["problem"].is_null());
    // Damaged again in place with its modification time put back (as `touch -r` or `cp -p` do): the size, the
    // time and the inode match what was last looked at; the change time does not.
    let mtime = std::fs::metadata(&ck).unwrap().modified().unwrap();
    std::fs::write(&ck, &bad).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&ck)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let problem = info(&srv.url)["problem"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(problem.contains("checksum"), "{problem}");
    std::fs::write(&ck, &good).unwrap();
    assert!(info(&srv.url)["problem"].is_null());
    // The images shown are the same; their positions come from the new encoder.
    let (_, _, pts) = ask(&srv.url, "GET", "/api/points", &own_host(&srv.url), "");
    let pts: Value = serde_json::from_slice(&pts).unwrap();
    assert_eq!(pts["x"].as_array().unwrap().len(), 200);
    let err = std::fs::read_to_string(&srv.stderr).unwrap();
    assert!(
        err.contains("reloaded") && err.contains("at epoch 2"),
        "{err}"
    );

    // The previous epoch's checkpoint put back: offered as what the run's file now holds.
    std::fs::copy(run_dir.join("checkpoint.prev.safetensors"), &ck)
        .expect("the previous checkpoint");
    let now = info(&srv.url);
    assert_eq!(now["saved"]["epoch"], 1, "{now}");
    assert!(now["problem"].is_null(), "{now}");
    std::fs::write(&ck, &good).unwrap();
    assert!(info(&srv.url)["saved"].is_null());

    // Another run's checkpoint put in its place, trained on other images of the same size: refused, the
    // weights kept.
    let images = tmp.path().join("images");
    for (split, n) in [("train", 12), ("test", 4)] {
        let d = images.join(split).join("blobs");
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            let img =
                image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * y + i) % 256) as u8]));
            img.save(d.join(format!("{i}.png"))).unwrap();
        }
    }
    let other = tmp.path().join("other");
    let o = run(elbo()
        .args(["train", "--epochs", "1", "--latent", "2", "--out"])
        .arg(&other)
        .arg("--data")
        .arg(&images));
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::copy(other.join("checkpoint.safetensors"), &ck).unwrap();
    let (s, body) = reload(&srv.url);
    assert_eq!(s, 409, "{body}");
    assert!(body.contains("another run"), "{body}");
    assert_eq!(info(&srv.url)["epoch"], 2);
    assert_eq!(decode(&srv.url), new);
}

#[test]
fn every_bound_address_answers_to_its_own_names_only() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = small_run(tmp.path());
    let srv = serve_run(
        &run_dir,
        &[
            "--host",
            "0.0.0.0",
            "--points",
            "50",
            "--allow-host",
            "explorer.test",
            "--allow-host",
            "proxy.test:8443",
        ],
    );
    let p = port(&srv.url);
    let mut name = [0u8; 256];
    unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) };
    let name =
        String::from_utf8_lossy(&name[..name.iter().position(|&b| b == 0).unwrap()]).into_owned();
    let cases: Vec<(String, u16)> = vec![
        ("evil.com".into(), 421),
        (format!("attacker.test:{p}"), 421),
        (format!("127.0.0.1:{p}"), 200),
        ("127.0.0.1".into(), 200),
        (format!("LocalHost.:{p}"), 200),
        (format!("localhost:{}", p.parse::<u16>().unwrap() ^ 1), 421),
        (format!("{name}:{p}"), 200),
        (format!("[::1]:{p}"), 200),
        (format!("0.0.0.0:{p}"), 200),
        (format!("explorer.test:{p}"), 200),
        ("explorer.test:1".into(), 421),
        ("proxy.test:8443".into(), 200),
        ("sub.explorer.test".into(), 421),
        (String::new(), 400),
    ];
    for (host, want) in &cases {
        let (s, _, body) = ask(&srv.url, "GET", "/api/item/0", host, "");
        assert_eq!(
            s,
            *want,
            "Host {host:?}: {}",
            String::from_utf8_lossy(&body)
        );
        if s == 421 {
            let body = String::from_utf8_lossy(&body);
            assert!(body.contains("--allow-host NAME"), "{body}");
        }
    }
    // HTTP/1.0 has no Host: answered, as before.
    let (s, _) = exchange(&srv.url, b"GET /api/info HTTP/1.0\r\n\r\n");
    assert_eq!(s, 200);
    let (s, _) = exchange(
        &srv.url,
        b"GET http://attacker.test/api/info HTTP/1.0\r\n\r\n",
    );
    assert_eq!(s, 421);
}

#[test]
fn a_server_bound_to_another_loopback_address_answers_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = small_run(tmp.path());
    let srv = serve_at(&run_dir, &["--host", "127.0.0.2", "--points", "50"]);
    assert!(srv.url.starts_with("http://127.0.0.2:"), "{}", srv.url);
    // Bound to another loopback address: it answers to that address, as printed.
    assert_eq!(get(&srv.url, "/api/info").0, 200);
    let (s, _, _) = ask(&srv.url, "GET", "/api/info", "evil.com", "");
    assert_eq!(s, 421);

    // IPv6 loopback, where the machine has it.
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let srv = serve_at(&run_dir, &["--host", "::1", "--points", "50"]);
        assert!(srv.url.starts_with("http://[::1]:"), "{}", srv.url);
        assert_eq!(get(&srv.url, "/api/info").0, 200);
        let p = port(&srv.url);
        for (host, want) in [
            (format!("[0:0:0:0:0:0:0:1]:{p}"), 200),
            (format!("::1:{p}"), 421),
            (format!("[::2]:{p}"), 421),
        ] {
            assert_eq!(
                ask(&srv.url, "GET", "/api/info", &host, "").0,
                want,
                "{host}"
            );
        }
    }
}

#[test]
fn pages_of_other_origins_can_neither_read_nor_embed_the_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = small_run(tmp.path());
    let srv = serve_run(&run_dir, &["--points", "50"]);
    let host = own_host(&srv.url);
    let p = port(&srv.url);
    let other_port = p.parse::<u16>().unwrap() ^ 1;
    let nav = "Sec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n";
    for (path, extra, want) in [
        ("/api/item/0", String::new(), 200),
        ("/api/item/0", "Sec-Fetch-Site: same-origin\r\n".into(), 200),
        ("/api/item/0", "Sec-Fetch-Site: none\r\n".into(), 200),
        ("/api/item/0", "Sec-Fetch-Site: cross-site\r\n".into(), 403),
        // Another port of this machine is the same site, but not the same origin.
        (
            "/api/decode?z=0,0",
            "Sec-Fetch-Site: same-site\r\n".into(),
            403,
        ),
        (
            "/api/item/999",
            "Sec-Fetch-Site: cross-site\r\n".into(),
            403,
        ),
        ("/api/info", "Origin: http://evil.com\r\n".into(), 403),
        ("/api/info", "Origin: null\r\n".into(), 403),
        ("/api/info", format!("Origin: http://{host}\r\n"), 200),
        (
            "/api/info",
            format!("Origin: http://LOCALHOST:{p}\r\n"),
            200,
        ),
        (
            "/api/info",
            format!("Origin: http://localhost:{}\r\n", other_port),
            403,
        ),
        ("/api/info", "Origin: http://localhost\r\n".into(), 403),
        // A second header of either kind is no browser's: refused whichever comes first.
        (
            "/api/info",
            format!("Origin: http://{host}\r\nOrigin: http://evil.com\r\n"),
            403,
        ),
        (
            "/api/info",
            "Sec-Fetch-Site: none\r\nSec-Fetch-Site: cross-site\r\n".into(),
            403,
        ),
        // Following a link to the page itself is fine: once open, it is its own origin.
        ("/", format!("Sec-Fetch-Site: cross-site\r\n{nav}"), 200),
        (
            "/",
            "Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: iframe\r\n"
                .into(),
            403,
        ),
        (
            "/api/info",
            format!("Sec-Fetch-Site: cross-site\r\n{nav}"),
            403,
        ),
    ] {
        let (s, head, body) = ask(&srv.url, "GET", path, &host, &extra);
        assert_eq!(
            s,
            want,
            "{path} {extra:?}: {}",
            String::from_utf8_lossy(&body)
        );
        let head = head.to_ascii_lowercase();
        for h in [
            "cross-origin-resource-policy: same-origin",
            "x-content-type-options: nosniff",
            "content-security-policy: default-src 'self'",
        ] {
            assert!(head.contains(h), "{path} {extra:?} lacks {h}: {head}");
        }
    }
    // A form on another site posting to the reload: refused before it reaches it.
    let (s, _, _) = ask(
        &srv.url,
        "POST",
        "/api/reload",
        &host,
        "Origin: http://evil.com\r\nSec-Fetch-Site: cross-site\r\n",
    );
    assert_eq!(s, 403);
    // The reload takes no body, like every endpoint, and no other endpoint takes a POST.
    let (s, _, _) = ask(
        &srv.url,
        "POST",
        "/api/reload",
        &host,
        "Content-Length: 2\r\n",
    );
    assert_eq!(s, 413);
    let (s, _, body) = ask(&srv.url, "POST", "/api/decode?z=0,0", &host, "");
    assert_eq!(s, 405, "{}", String::from_utf8_lossy(&body));
}
