//! The explorer page in a real browser: Debian's headless Chromium driven through chromedriver (installed by
//! `.ci/run`). Hovering, the decode pad, a slider and the interpolation strip are checked against what the
//! command line computes, and screenshots are taken.
//!
//! `ELBO_BROWSER_RUN` explores that run instead of a fresh small one; `ELBO_SCREENSHOTS` keeps the
//! screenshots in that folder (how the README's picture was made).

mod common;
use common::*;
use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// chromedriver on a free port, killed when dropped.
struct Driver(std::process::Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect(
            "chromedriver runs: install Debian's chromium and chromium-driver (.ci/run does), \
             or run the other tests with --skip browser",
        );
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver(child, port)
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect(script)
}

/// Waits until `script` returns true.
async fn until(c: &Client, script: &str, what: &str) {
    let t = Instant::now();
    loop {
        if js(c, script).await == json!(true) {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn move_to(c: &Client, id: &str, x: f64, y: f64) {
    let el = c.find(Locator::Id(id)).await.unwrap();
    let m = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
        element: el,
        duration: None,
        x,
        y,
    });
    c.perform_actions(m).await.unwrap();
}

async fn click_at(c: &Client, id: &str, x: f64, y: f64) {
    let el = c.find(Locator::Id(id)).await.unwrap();
    let m = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: el,
            duration: None,
            x,
            y,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    c.perform_actions(m).await.unwrap();
}

/// The decoded canvas once no request is pending: its code and its first channel's pixels.
async fn decoded(c: &Client, decodes_before: u64) -> (String, Vec<u8>) {
    until(
        c,
        &format!("return elbo.decodes > {decodes_before} && !elbo.inflight && !elbo.pending"),
        "a decoding",
    )
    .await;
    let v = js(
        c,
        "const c = document.getElementById('decoded');
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
         const px = []; for (let i = 0; i < d.length; i += 4) px.push(d[i]);
         return [c.dataset.z, px];",
    )
    .await;
    let px = v[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u8)
        .collect();
    (v[0].as_str().unwrap().to_string(), px)
}

/// `elbo decode RUN --z Z --pad 0`: the first channel of its one image.
fn cli_decode(run_dir: &Path, z: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join("cli-decode.png");
    let o = run(elbo()
        .arg("decode")
        .arg(run_dir)
        .args(["--z", z, "--pad", "0", "--force", "--out"])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    image::open(&out)
        .unwrap()
        .to_rgb8()
        .pixels()
        .map(|p| p.0[0])
        .collect()
}

/// A headless Chromium session through `d`, with `args` added to its command line.
async fn browser(d: &Driver, args: &[&str]) -> Client {
    let mut all = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--force-device-scale-factor=1",
    ];
    all.extend(args);
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": all }
    }))
    .unwrap();
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.1))
        .await
        .expect("a WebDriver session with headless Chromium")
}

fn run_to_explore(tmp: &Path) -> PathBuf {
    if let Some(r) = std::env::var_os("ELBO_BROWSER_RUN") {
        return PathBuf::from(r);
    }
    // Two latent dimensions, so the scatter shows the raw plane.
    let dir = tmp.join("run2d");
    let o = run(elbo()
        .args([
            "train", "--latent", "2", "--epochs", "2", "--limit", "6000", "--out",
        ])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

#[tokio::test(flavor = "current_thread")]
async fn the_explorer_page_works_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = run_to_explore(tmp.path());
    let shots = std::env::var_os("ELBO_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let srv = serve_run(&run_dir, &["--points", "1000"]);
    let d = driver();
    let c = browser(&d, &[]).await;
    c.goto(&srv.url).await.unwrap();
    until(&c, "return document.body.dataset.ready === '1'", "the page").await;

    // The scatter drew every point, in colour.
    let info = js(&c, "return elbo.info").await;
    let n = info["points"].as_u64().unwrap();
    assert_eq!(n, 1000);
    assert_eq!(
        js(
            &c,
            "return document.getElementById('scatter').dataset.drawn"
        )
        .await,
        json!(n.to_string())
    );
    let inked = js(
        &c,
        "const c = document.getElementById('scatter');
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
         let k = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) k++; return k;",
    )
    .await
    .as_u64()
    .unwrap();
    assert!(inked > 1000, "the points are on the canvas: {inked} pixels");

    // Hovering a point shows that image.
    let off = js(&c, "return elbo.offset(17)").await;
    move_to(
        &c,
        "scatter",
        off[0].as_f64().unwrap(),
        off[1].as_f64().unwrap(),
    )
    .await;
    until(
        &c,
        "const i = document.getElementById('hover-img');
         return elbo.hover >= 0 && i.dataset.index === String(elbo.hover) && i.complete && i.naturalWidth > 0",
        "the hovered image",
    )
    .await;
    let width = js(
        &c,
        "return document.getElementById('hover-img').naturalWidth",
    )
    .await;
    assert_eq!(width, info["width"]);
    c.screenshot()
        .await
        .map(|png| std::fs::write(shots.join("explorer-hover.png"), png))
        .unwrap()
        .unwrap();

    // The decode pad: the decoded pixels equal `elbo decode` of the same code, and move with the pointer.
    let before = js(&c, "return elbo.decodes").await.as_u64().unwrap();
    move_to(&c, "pad", -40.0, 30.0).await;
    let (z1, px1) = decoded(&c, before).await;
    let cli = cli_decode(&run_dir, &z1, tmp.path());
    assert_eq!(px1.len(), cli.len());
    let worst = px1
        .iter()
        .zip(&cli)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(
        worst <= 1,
        "page and `elbo decode` differ by {worst} grey levels at z = {z1}"
    );
    let before = js(&c, "return elbo.decodes").await.as_u64().unwrap();
    move_to(&c, "pad", 50.0, -60.0).await;
    let (z2, px2) = decoded(&c, before).await;
    assert_ne!(z1, z2);
    assert_ne!(px1, px2, "moving on the pad changes the image");

    // A slider: clicking near its right end sets that dimension and decodes again.
    let before = js(&c, "return elbo.decodes").await.as_u64().unwrap();
    click_at(&c, "z0", 50.0, 0.0).await;
    let (z3, px3) = decoded(&c, before).await;
    let z0: f64 = z3.split(',').next().unwrap().parse().unwrap();
    assert!(z0 > 0.5, "z0 moved right: {z3}");
    assert_ne!(px3, px2);
    assert_eq!(px3, cli_decode(&run_dir, &z3, tmp.path()));

    // The keyboard moves a slider by a hundredth of its span (Page Up by a tenth, End to its end), as the
    // browser's own step would not.
    let z0_now = "return [elbo.z[0], elbo.info.ranges[0][0], elbo.info.ranges[0][1]]";
    let slider = c.find(Locator::Id("z0")).await.unwrap();
    for (key, hundredths) in [("\u{E014}", 1.0), ("\u{E012}", -1.0), ("\u{E00E}", 10.0)] {
        until(&c, "return !elbo.inflight && !elbo.pending", "the decodes").await;
        let was = js(&c, z0_now).await;
        slider.send_keys(key).await.unwrap();
        let now = js(&c, z0_now).await;
        let (a, b) = (was[1].as_f64().unwrap(), was[2].as_f64().unwrap());
        let want = (was[0].as_f64().unwrap() + hundredths * (b - a) / 100.0).clamp(a, b);
        assert!(
            (now[0].as_f64().unwrap() - want).abs() < 1e-9 * (b - a),
            "key {key:?}: {was} then {now}"
        );
    }
    slider.send_keys("\u{E010}").await.unwrap();
    let end = js(&c, z0_now).await;
    assert_eq!(end[0], end[2], "End takes the slider to its end: {end}");
    until(&c, "return !elbo.inflight && !elbo.pending", "the decodes").await;

    // A value beyond a slider's span keeps its number, marked as outside (the thumb can only show the nearer end);
    // back inside, the mark goes.
    let marks = "const o = document.getElementById('z0-out'); \
                 return [o.textContent, o.className, o.title, Number(document.getElementById('z0').value)]";
    js(&c, "elbo.setZ(elbo.z.map(() => 7), 'button'); return 0").await;
    let outside = js(&c, marks).await;
    assert_eq!(outside[0], json!("7.00"), "{outside}");
    assert_eq!(outside[1], json!("outside"), "{outside}");
    assert!(
        outside[2]
            .as_str()
            .unwrap()
            .contains("outside this slider's span"),
        "{outside}"
    );
    assert!(
        outside[3].as_f64().unwrap() < 7.0,
        "the thumb stops at the end: {outside}"
    );
    // NaN lies in no span; a value just past the end shows the digits that put it there.
    js(&c, "elbo.setZ(elbo.z.map(() => NaN), 'button'); return 0").await;
    assert_eq!(js(&c, marks).await[1], json!("outside"));
    js(&c, "const hi = elbo.info.ranges[0][1]; elbo.setZ(elbo.z.map(() => hi + 1e-4), 'button'); return 0").await;
    let past = js(&c, marks).await;
    assert_eq!(past[1], json!("outside"), "{past}");
    assert_ne!(
        past[0].as_str().unwrap().len(),
        4,
        "more than two decimals: {past}"
    );
    // Either end itself is inside, and the thumb reaches it.
    for end in [0, 1] {
        let set = format!(
            "const e = elbo.info.ranges[0][{end}]; elbo.setZ(elbo.z.map(() => e), 'button'); return e"
        );
        let e = js(&c, &set).await.as_f64().unwrap();
        let at = js(&c, marks).await;
        assert_eq!(at[1], json!(""), "end {end}: {at}");
        assert_eq!(
            at[3].as_f64().unwrap(),
            e,
            "the thumb reaches end {end}: {at}"
        );
    }
    // Whatever the span, the thumb reaches its end: a step that does not divide it would stop short.
    let awkward = "const s = document.getElementById('z0'); const [a, b] = [s.min, s.max]; \
                   s.min = '-2.345678'; s.max = '2.91234'; s.value = '2.91234'; const v = s.value; \
                   s.min = a; s.max = b; return v";
    assert_eq!(js(&c, awkward).await, json!("2.91234"));
    // A span of 16 digits: the browser reports a thumb at either end to 15, which may lie just past it. The page
    // takes the end itself, inside its span.
    let drag = "const s = document.getElementById('z0'); const r = elbo.info.ranges[0]; const [a, b] = r; \
                const [lo, hi] = [0.5465203928756713, 8.432730746269225]; r[0] = lo; r[1] = hi; \
                s.min = String(lo); s.max = String(hi); const out = []; \
                for (const e of [hi, lo]) { s.value = String(e); s.dispatchEvent(new Event('input')); \
                  const o = document.getElementById('z0-out'); out.push(elbo.z[0] === e, o.className); } \
                r[0] = a; r[1] = b; s.min = String(a); s.max = String(b); return out";
    assert_eq!(js(&c, drag).await, json!([true, "", true, ""]));
    until(&c, "return !elbo.inflight && !elbo.pending", "the decodes").await;
    js(&c, "document.getElementById('reset').click(); return 0").await;
    let inside = js(&c, marks).await;
    assert_eq!(inside[0], json!("0.00"), "{inside}");
    assert_eq!(inside[1], json!(""), "{inside}");
    until(&c, "return !elbo.inflight && !elbo.pending", "the decodes").await;

    // Select two points, set them as A and B: the strip shows the path between them.
    for (i, button) in [(3, "set-a"), (500, "set-b")] {
        let off = js(&c, &format!("return elbo.offset({i})")).await;
        click_at(
            &c,
            "scatter",
            off[0].as_f64().unwrap(),
            off[1].as_f64().unwrap(),
        )
        .await;
        until(
            &c,
            "return elbo.sel >= 0 && !document.getElementById('set-a').disabled",
            "a selection",
        )
        .await;
        c.find(Locator::Id(button))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    until(
        &c,
        "return document.getElementById('strip').dataset.steps === '8'",
        "the interpolation strip",
    )
    .await;
    until(
        &c,
        "return document.getElementById('sel-rec').complete && document.getElementById('sel-rec').naturalWidth > 0",
        "the reconstruction",
    )
    .await;
    let shot = c.screenshot().await.unwrap();
    let img = image::load_from_memory(&shot).unwrap().to_rgb8();
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(
        colours.len() > 50,
        "the screenshot shows the page, not a blank"
    );
    std::fs::write(shots.join("explorer.png"), &shot).unwrap();

    // What a user waits for: first paint, and the page's weight.
    let paint = js(
        &c,
        "const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? p.startTime : -1",
    )
    .await;
    eprintln!(
        "first contentful paint {paint} ms; page {} bytes (html, js, css), decode as the page saw it {} ms",
        elbo::serve::http::page_bytes(),
        js(&c, "return elbo.lastMs").await
    );
    c.close().await.unwrap();
}

/// Clicks the element of id `id`.
async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// `elbo train --resume RUN --epochs E`.
fn train_on(run_dir: &Path, epochs: &str) {
    let o = run(elbo()
        .args(["train", "--epochs", epochs, "--resume"])
        .arg(run_dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
}

/// What a user sees of the checkpoints: the epoch shown, and the banner (empty when hidden).
async fn epoch_and_banner(c: &Client) -> (String, String) {
    let v = js(
        c,
        "return [document.getElementById('epoch').textContent,
                 document.getElementById('banner').hidden ? '' : document.getElementById('banner').innerText]",
    )
    .await;
    (
        v[0].as_str().unwrap().to_string(),
        v[1].as_str().unwrap().to_string(),
    )
}

/// A DNS name rebound to this machine reaches a server bound to every address, and is refused; the page
/// shows the epoch of its weights, notices a checkpoint saved since, and its Reload button shows it, or says
/// why it cannot.
#[tokio::test(flavor = "current_thread")]
async fn the_page_refuses_a_rebound_name_and_reloads_a_newer_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let o = run(elbo()
        .args([
            "train", "--epochs", "1", "--limit", "600", "--latent", "2", "--out",
        ])
        .arg(&run_dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let srv = serve_run(&run_dir, &["--host", "0.0.0.0", "--points", "300"]);
    let port = srv.url.trim_end_matches('/').rsplit(':').next().unwrap();
    let d = driver();
    let c = browser(&d, &["--host-resolver-rules=MAP attacker.test 127.0.0.1"]).await;

    // The attacker's name, resolved to this machine: the page and its data are refused.
    c.goto(&format!("http://attacker.test:{port}/"))
        .await
        .unwrap();
    let text = js(&c, "return document.body.innerText").await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("does not answer to the name"),
        "{text}"
    );
    let status = js(
        &c,
        "return fetch('/api/points').then((r) => r.status, (e) => String(e))",
    )
    .await;
    assert_eq!(status, json!(421), "the rebound page reads the points");

    // The machine's own address works, and shows the epoch.
    c.goto(&srv.url).await.unwrap();
    until(&c, "return document.body.dataset.ready === '1'", "the page").await;
    assert_eq!(
        epoch_and_banner(&c).await,
        ("epoch 1".into(), String::new())
    );
    let before = js(&c, "return elbo.decodes").await.as_u64().unwrap();
    js(&c, "document.getElementById('reset').click(); return 0").await;
    let (_, px1) = decoded(&c, before).await;

    // Training goes on: the banner offers epoch 2; the reload shows it and decodes again.
    train_on(&run_dir, "2");
    until(
        &c,
        "return !document.getElementById('banner').hidden && !document.getElementById('reload').hidden",
        "the banner",
    )
    .await;
    let (epoch, banner) = epoch_and_banner(&c).await;
    assert_eq!(epoch, "epoch 1");
    assert!(banner.contains("epoch 2 is saved"), "{banner}");
    let before = js(&c, "return elbo.decodes").await.as_u64().unwrap();
    click(&c, "reload").await;
    until(&c, "return elbo.reloads === 1", "the reload").await;
    let (_, px2) = decoded(&c, before).await;
    assert_eq!(
        epoch_and_banner(&c).await,
        ("epoch 2".into(), String::new())
    );
    assert_ne!(px1, px2, "the new weights decode differently");
    assert_eq!(
        js(
            &c,
            "return document.getElementById('scatter').dataset.drawn"
        )
        .await,
        json!("300")
    );

    // A damaged checkpoint: the banner says so, without offering it, and the page keeps showing epoch 2.
    train_on(&run_dir, "3");
    let ck = run_dir.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&ck).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 0x10;
    std::fs::write(&ck, &bytes).unwrap();
    until(
        &c,
        "return document.getElementById('banner-text').textContent.includes('checksum mismatch')",
        "the banner naming the damage",
    )
    .await;
    let (epoch, banner) = epoch_and_banner(&c).await;
    assert_eq!(epoch, "epoch 2");
    assert!(banner.contains("still showing epoch 2"), "{banner}");
    assert_eq!(
        js(&c, "return document.getElementById('reload').hidden").await,
        json!(true)
    );
    assert_eq!(js(&c, "return elbo.reloads").await, json!(1));

    // The run replaced by an autoencoder on the same data: the reload builds the page again, without the
    // prior's button an autoencoder cannot answer.
    assert_eq!(
        js(&c, "return document.getElementById('random').hidden").await,
        json!(false)
    );
    let o = run(elbo()
        .args([
            "train", "--model", "ae", "--epochs", "1", "--limit", "600", "--latent", "2",
            "--force", "--out",
        ])
        .arg(&run_dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    until(
        &c,
        "return !document.getElementById('reload').hidden && document.getElementById('banner').innerText.includes('epoch 1 is saved')",
        "the banner for the autoencoder",
    )
    .await;
    js(&c, "window.elbo.stale = true; return 0").await;
    click(&c, "reload").await;
    until(
        &c,
        "return window.elbo && !window.elbo.stale && document.body.dataset.ready === '1' && document.getElementById('random').hidden",
        "the page built again for the autoencoder",
    )
    .await;
    assert!(
        js(&c, "return document.getElementById('run').textContent")
            .await
            .as_str()
            .unwrap()
            .contains("(autoencoder)")
    );
    c.close().await.unwrap();
}
