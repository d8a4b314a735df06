//! `elbo serve` over HTTP: what it answers, what it refuses, and that no request, however malformed, brings
//! it down. (The page itself is driven in a real browser in `browser.rs`.)

mod common;
use common::*;
use rand::{RngExt, SeedableRng};
use std::time::{Duration, Instant};

#[test]
fn the_explorer_answers_and_refuses_malformed_requests_with_a_message() {
    let srv = serve_run(&fixture_run(), &["--points", "300"]);
    let (status, info) = get(&srv.url, "/api/info");
    assert_eq!(status, 200, "{info}");
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["latent"], 20);
    assert_eq!(info["points"], 300);
    assert_eq!(info["plane"]["pca"], true);
    // N(0, I): the sliders span exactly ±3σ.
    assert_eq!(info["ranges"][19], serde_json::json!([-3.0, 3.0]));
    assert!(info["ranges_from"].as_str().unwrap().contains("N(0, I)"));
    let (status, points) = get(&srv.url, "/api/points");
    assert_eq!(status, 200);
    let points: serde_json::Value = serde_json::from_str(&points).unwrap();
    assert_eq!(points["x"].as_array().unwrap().len(), 300);
    for page in [
        "/",
        "/app.js",
        "/style.css",
        "/api/item/299",
        "/api/reconstruction/0",
        "/api/code/7",
    ] {
        assert_eq!(get(&srv.url, page).0, 200, "{page}");
    }
    let zero = vec!["0"; 20].join(",");
    assert_eq!(get(&srv.url, &format!("/api/decode?z={zero}")).0, 200);

    // Each malformed request: a 4xx and a line saying why.
    let host = srv
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let named: Vec<(String, &str)> = vec![
        ("/api/decode?z=0,0".into(), "has 2 numbers"),
        (
            format!("/api/decode?z={}", vec!["nan"; 20].join(",")),
            "must be finite",
        ),
        (
            format!("/api/decode?z={}", vec!["1e300"; 20].join(",")),
            "within",
        ),
        (format!("/api/decode?z={zero}&class=3"), "not conditional"),
        (format!("/api/decode?z={zero}&evil=1"), "unknown parameter"),
        ("/api/decode".into(), "has 0 numbers"),
        ("/api/decode?z=%ZZ".into(), ""),
        ("/api/item/300".into(), "not one of 0..299"),
        ("/api/item/-1".into(), "not one of"),
        ("/api/item/99999999999999999999999".into(), "not one of"),
        ("/api/code/x".into(), "not one of"),
        ("/etc/passwd".into(), "no such page"),
        ("/api/../../etc/passwd".into(), ""),
        (
            format!("/api/decode?z={}", "1,".repeat(400)),
            "characters long",
        ),
        (
            format!("/api/decode?z={}", "1,".repeat(5000)),
            "over 8192 bytes",
        ),
    ];
    for (path, why) in &named {
        let (status, body) = get(&srv.url, path);
        let shown: String = path.chars().take(60).collect();
        assert!((400..500).contains(&status), "{shown}: {status} {body}");
        assert!(!body.trim().is_empty(), "{shown}: no message");
        assert!(body.contains(why), "{shown}: {body}");
    }
    let raw = |req: String| exchange(&srv.url, req.as_bytes());
    let (s, body) = raw(format!(
        "POST /api/info HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(s, 405, "{body}");
    assert!(body.contains("read-only"));
    let (s, _) = raw(format!(
        "GET /api/info HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    ));
    assert_eq!(s, 413);
    let (s, body) =
        raw("GET /api/info HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n".into());
    assert_eq!(s, 421, "a rebound DNS name is refused: {body}");
    let port = host.rsplit(':').next().unwrap();
    for (headers, want) in [
        (format!("Host: {host}\r\nHost: evil.example\r\n"), 421),
        (format!("Host: LOCALHOST:{port}\r\n"), 200),
        ("Host: localhost\r\n".to_string(), 200),
    ] {
        let (s, body) = raw(format!(
            "GET /api/info HTTP/1.1\r\n{headers}Connection: close\r\n\r\n"
        ));
        assert_eq!(s, want, "{headers:?}: {body}");
    }
    let (s, _) = raw(format!(
        "GET http://evil.example/api/info HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(s, 421, "an absolute address naming another host");
    let (s, body) = get(&srv.url, &format!("/api/decode?z={zero}&z={zero}"));
    assert_eq!(s, 400);
    assert!(body.contains("given twice"), "{body}");
    let (_, body) = get(&srv.url, "/api/item/1%00");
    assert!(!body.contains('\0') && body.contains("\\u{0}"), "{body:?}");

    // Fuzz: random mutations of good requests and random bytes, bounded in count and time. Every answer is a
    // 2xx for a request that happens to be valid, else a 4xx (or, for bytes that are not HTTP, a closed
    // connection); never a 5xx, and the server stays up.
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
    let goods = [
        format!("/api/decode?z={zero}"),
        "/api/item/12".to_string(),
        "/api/code/5".to_string(),
        "/api/info".to_string(),
    ];
    let alphabet = b"0123456789,.-+eE%/?&=z\x00\xff ;#[]nainf\r\n\t";
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut counts = [0usize; 3];
    for n in 0..400 {
        if Instant::now() > deadline {
            break;
        }
        let req: Vec<u8> = match n % 4 {
            3 => (0..rng.random_range(1..600))
                .map(|_| rng.random())
                .collect(),
            k => {
                let mut path = goods[k].clone().into_bytes();
                for _ in 0..rng.random_range(1..6) {
                    let at = rng.random_range(0..=path.len());
                    let c = alphabet[rng.random_range(0..alphabet.len())];
                    match rng.random_range(0..3) {
                        0 => path.insert(at, c),
                        1 if at < path.len() => path[at] = c,
                        _ if at < path.len() => {
                            path.remove(at);
                        }
                        _ => path.push(c),
                    }
                }
                let mut r = b"GET ".to_vec();
                r.extend(path);
                r.extend(format!(" HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").bytes());
                r
            }
        };
        let (status, body) = exchange_then(&srv.url, &req, n % 4 == 3);
        let req_text = String::from_utf8_lossy(&req);
        match status {
            200..=299 => counts[0] += 1,
            400..=499 => counts[1] += 1,
            0 if n % 4 == 3 => counts[2] += 1,
            _ => panic!("{req_text:?} got {status}: {body}"),
        }
    }
    eprintln!(
        "fuzz: {} answered, {} refused, {} closed",
        counts[0], counts[1], counts[2]
    );
    assert!(counts[1] > 100, "most mutations are refused: {counts:?}");
    assert_eq!(get(&srv.url, "/api/info").0, 200, "still serving");

    // Decoding latency, as the page sees it (measured, not asserted: other tests share the machine).
    let mut ms: Vec<f64> = (0..30)
        .map(|k| {
            let t = Instant::now();
            let (s, _) = get(
                &srv.url,
                &format!(
                    "/api/decode?z={}",
                    vec![format!("{}", k as f64 * 0.1 - 1.5); 20].join(",")
                ),
            );
            assert_eq!(s, 200);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    eprintln!("decode round trip: median {:.2} ms", ms[15]);

    // Ctrl-C stops it cleanly.
    let mut srv = srv;
    let status = srv.stop_with(libc::SIGINT, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let err = std::fs::read_to_string(&srv.stderr).unwrap();
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn serve_refuses_what_it_cannot_show_and_warns_beyond_this_machine() {
    let fixture = fixture_run();
    let o = run(elbo().arg("serve").arg(&fixture).args(["--points", "0"]));
    assert_user_error(&o, "--points 0 must be between 1 and 20000");
    // A port in use is named.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = run(elbo().arg("serve").arg(&fixture).args(["--port", &port]));
    assert_user_error(&o, "pick another --port");
    // Another address than loopback is served, with a warning, and answers to this machine's names only.
    let mut child = elbo()
        .arg("serve")
        .arg(&fixture)
        .args(["--host", "0.0.0.0", "--port", "0", "--points", "50"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let (s, _) = exchange(
        &format!("http://127.0.0.1:{port}/"),
        b"GET /api/info HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(s, 421);
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/"), "/api/info").0,
        200
    );
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: listening on 0.0.0.0"), "{err}");
}

/// The random button's codes come from the model's prior, a learned mixture included: drawn by the server from
/// a seed, the same seed the same code.
#[test]
fn random_codes_are_drawn_from_the_model_s_prior() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mog");
    let o = run(elbo()
        .args(["train", "--epochs", "1", "--limit", "600", "--latent", "3"])
        .args(["--prior", "mog", "--prior-components", "4", "--out"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let srv = serve_run(&dir, &["--points", "100"]);
    let code = |seed: &str| -> Vec<f64> {
        let (s, body) = get(&srv.url, &format!("/api/sample?seed={seed}"));
        assert_eq!(s, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["z"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    // The sliders span the learned prior's own draws (its means sit wherever training put them), not N(0, I)'s
    // ±3: nearly every random code lies within them.
    let info: serde_json::Value = serde_json::from_str(&get(&srv.url, "/api/info").1).unwrap();
    assert!(
        info["ranges_from"]
            .as_str()
            .unwrap()
            .contains("learned prior"),
        "{info}"
    );
    let ranges: Vec<[f64; 2]> = serde_json::from_value(info["ranges"].clone()).unwrap();
    assert_eq!(ranges.len(), 3);
    assert!(ranges.iter().all(|r| r[0] < r[1]), "{ranges:?}");
    assert_ne!(ranges, vec![[-3.0, 3.0]; 3]);
    let mut inside = 0;
    for seed in 100..200 {
        let z = code(&seed.to_string());
        inside += z
            .iter()
            .zip(&ranges)
            .filter(|(v, r)| r[0] <= **v && **v <= r[1])
            .count();
    }
    assert!(
        inside >= 290,
        "{inside} of 300 coordinates inside {ranges:?}"
    );
    let (a, b) = (code("7"), code("8"));
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|x| x.is_finite()));
    assert_eq!(a, code("7"), "one seed, one code");
    assert_ne!(a, b);
    for bad in ["x", "-1", "1.5"] {
        let (s, body) = get(&srv.url, &format!("/api/sample?seed={bad}"));
        assert_eq!(s, 400, "{bad}: {body}");
        assert!(body.contains("not a whole number"), "{body}");
    }
    let (s, body) = get(&srv.url, "/api/sample?seed=1&temperature=2");
    assert!((400..500).contains(&s), "{body}");
}

#[test]
fn autoencoders_and_conditional_models_are_explored_too() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, flags) in [
        ("ae", &["--model", "ae"][..]),
        ("cvae", &["--conditional"][..]),
    ] {
        let dir = tmp.path().join(name);
        let o = run(elbo()
            .args([
                "train", "--epochs", "1", "--limit", "600", "--latent", "3", "--out",
            ])
            .arg(&dir)
            .args(flags)
            .arg("--data-dir")
            .arg(mnist_dir()));
        assert!(o.status.success(), "{}", stderr(&o));
        let srv = serve_run(&dir, &["--points", "100"]);
        let info: serde_json::Value = serde_json::from_str(&get(&srv.url, "/api/info").1).unwrap();
        let z = "0.1,0.2,0.3";
        let (s, body) = get(&srv.url, "/api/sample?seed=4");
        if name == "ae" {
            assert_eq!(s, 400, "{body}");
            assert!(body.contains("no prior"), "{body}");
        } else {
            assert_eq!(s, 200, "{body}");
        }
        if name == "ae" {
            assert_eq!(info["variational"], false);
            // An autoencoder's sliders span its codes, not a prior's ±3.
            assert_ne!(info["ranges"][0], serde_json::json!([-3.0, 3.0]));
            assert_eq!(get(&srv.url, &format!("/api/decode?z={z}")).0, 200);
        } else {
            assert_eq!(info["conditional"], true);
            let (s, body) = get(&srv.url, &format!("/api/decode?z={z}"));
            assert_eq!(s, 400);
            assert!(body.contains("this model is conditional"), "{body}");
            assert_eq!(get(&srv.url, &format!("/api/decode?z={z}&class=9")).0, 200);
            let (s, body) = get(&srv.url, &format!("/api/decode?z={z}&class=10"));
            assert_eq!(s, 400, "{body}");
        }
    }
}

#[test]
fn silent_clients_neither_lock_others_out_nor_keep_the_server_running() {
    let srv = serve_run(&fixture_run(), &["--points", "50"]);
    let addr = srv
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    // More connections than the server serves at once, each sending nothing, or half a request.
    let mut silent: Vec<std::net::TcpStream> = (0..80)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    use std::io::Write;
    silent[0]
        .write_all(b"GET /api/info HTTP/1.1\r\nHo")
        .unwrap();
    // Their headers time out after 10 s, so a real request is answered soon after: wait for it longer than that
    // (a 10 s wait lost the race on a loaded machine).
    let t = Instant::now();
    let host = addr.as_str();
    let request = format!("GET /api/info HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (status, _) = exchange_within(&srv.url, request.as_bytes(), false, 30);
    assert_eq!(status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "answered after {:?}",
        t.elapsed()
    );
    // Stopping does not wait for a client that is still sending its request.
    let mut half = std::net::TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut srv = srv;
    let status = srv.stop_with(libc::SIGTERM, Duration::from_secs(8));
    assert!(status.success(), "{status:?}");
    drop(silent);
}
