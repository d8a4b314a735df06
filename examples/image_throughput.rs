//! Decode + resize throughput of an image folder, as `elbo train --data DIR --image-size SIZE` loads it (no
//! cache): `cargo run --release --example image_throughput -- DIR [SIZE] [THREADS]`. Prints one JSON line.

use elbo::data::images::{self, Found, ImageOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: image_throughput DIR [SIZE] [THREADS]");
    let size: usize = args.next().map_or(64, |s| s.parse().expect("SIZE"));
    let threads: usize = args.next().map_or(2, |s| s.parse().expect("THREADS"));
    elbo::core::threads::init(threads);
    let opts = ImageOptions {
        size: Some((size, size)),
        channels: Some(3),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let found = elbo::core::threads::run(|| images::load(std::path::Path::new(&dir), &opts))
        .expect("loads");
    let secs = started.elapsed().as_secs_f64();
    let n = match found {
        Found::One(d) => d.len(),
        Found::Split(a, b) => a.len() + b.len(),
    };
    println!(
        "{{\"images\": {n}, \"seconds\": {secs:.4}, \"images_per_second\": {:.1}}}",
        n as f64 / secs
    );
}
