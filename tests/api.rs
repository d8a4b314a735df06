//! The library facade as a Rust user meets it: train from `Settings` with an observer that stops early, open the
//! run as a `Model`, and use it on items held in memory exactly as on the same values read from a file.

mod common;

use elbo::api::{EpochMetrics, Flow, Observer};
use elbo::data::numpy::MemArray;
use elbo::{Model, Settings, Trainer};

/// Counts what it is told and stops after `stop_after` epochs.
struct Stopper {
    stop_after: usize,
    starts: usize,
    steps: usize,
    lines: Vec<String>,
}

impl Observer for Stopper {
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _items: usize) {
        self.starts += 1;
    }
    fn step(&mut self, _items: usize, loss: f64, _per_second: f64) {
        assert!(loss.is_finite());
        self.steps += 1;
    }
    fn epoch_end(&mut self, m: &EpochMetrics, line: &str) -> Flow {
        self.lines.push(line.to_string());
        if m.epoch >= self.stop_after {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

/// 200 grey 8×8 images: a bright square at a varying place on black.
fn images() -> Vec<u8> {
    let mut v = vec![0u8; 200 * 64];
    for i in 0..200 {
        let (r, c) = (i % 5, (i / 5) % 5);
        for y in r..r + 3 {
            for x in c..c + 3 {
                v[i * 64 + y * 8 + x] = 250;
            }
        }
    }
    v
}

#[test]
fn train_stop_early_then_use_the_model_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("x.npy");
    std::fs::write(&data, common::npy(&[200, 8, 8], images())).unwrap();
    let out = dir.path().join("run");
    let settings = Settings {
        data: Some(data.clone()),
        hidden: Some(vec![16].into()),
        latent: Some(2.into()),
        epochs: Some(6),
        batch_size: Some(20),
        out: Some(out.clone()),
        ..Default::default()
    };
    let mut trainer = Trainer::new(&settings, false).unwrap();
    let mut obs = Stopper {
        stop_after: 2,
        starts: 0,
        steps: 0,
        lines: Vec::new(),
    };
    let history = trainer.fit(&mut obs).unwrap();
    // Stopped after epoch 2 of 6, with that epoch saved; each epoch ran its steps and reported its line.
    assert_eq!(history.len(), 2);
    assert_eq!(obs.starts, 2);
    assert!(obs.steps >= 2 * 9, "{} steps", obs.steps);
    assert!(obs.lines[1].starts_with("epoch   2/6"), "{}", obs.lines[1]);
    drop(trainer);

    let model = Model::open(&out).unwrap();
    assert_eq!((model.epoch(), model.latent()), (2, 2));
    // Items from memory and the same values from the file encode identically.
    let from_file = model.read(&data).unwrap();
    let from_memory = model
        .items(MemArray::uint8(vec![200, 8, 8], images()), None)
        .unwrap();
    let (a, b) = (
        model.encode(&from_file).unwrap(),
        model.encode(&from_memory).unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!((a.n, a.mu.len(), a.logvar.len()), (200, 400, 400));
    let images = model.decode(&a.mu[..4], &[]).unwrap();
    assert_eq!(images.len(), 2 * 64);
    assert!(images.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(
        model.sample(3, 7, 1.0, &[]).unwrap(),
        model.sample(3, 7, 1.0, &[]).unwrap()
    );
    let scores = model.score(&from_memory, 4, 1).unwrap();
    assert_eq!(scores.len(), 200);
    // A progress callback that says stop ends the work early with an error, never a partial answer.
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let stop = |_: usize| {
        asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        false
    };
    let e = model.score_with(&from_memory, 4, 1, &stop).unwrap_err();
    assert!(matches!(e, elbo::error::Error::Stopped { .. }), "{e}");
    assert!(model.evaluate_with(&from_memory, 4, 1, &stop).is_err());
    assert!(asked.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    // Flattened items: the message says the values are all there and the shape to give.
    let flat = model
        .items(MemArray::uint8(vec![2, 64], vec![0; 128]), None)
        .unwrap_err()
        .to_string();
    assert!(flat.contains("reshape each item to 8x8x1"), "{flat}");
    // Shapes and values the model cannot take are errors, not panics.
    assert!(model.decode(&[0.0; 3], &[]).is_err());
    assert!(model.decode(&[f32::NAN, 0.0], &[]).is_err());
    assert!(model.decode(&[0.0, 0.0], &[0]).is_err());
    assert!(model.sample(0, 1, 1.0, &[]).is_err());
    assert!(model.sample(1, 1, f64::NAN, &[]).is_err());
    assert!(model.score(&from_memory, 0, 1).is_err());
    let wrong = model.items(MemArray::uint8(vec![2, 4, 4], vec![0; 32]), None);
    assert!(wrong.is_err());
    // A second run into the same directory is refused without `force`, and nothing is removed.
    let again = Trainer::new(&settings, false);
    assert!(again.is_err());
    assert!(Model::open(&out).is_ok());
}

#[test]
fn settings_errors_name_keywords_for_front_ends_without_flags() {
    let table: toml::Table = toml::from_str("likelihood = \"poisson\"").unwrap();
    let e = Settings::from_table(table, "elbo.VAE", None).unwrap_err();
    assert!(
        e.to_string()
            .contains("'poisson' is not one of bernoulli, gaussian, logistic"),
        "{e}"
    );
    let s = Settings {
        lr: Some(-1.0),
        ..Default::default()
    };
    let e = s.resolve().unwrap_err().to_string();
    let k = elbo::train::settings::as_keywords(&e);
    assert!(e.contains("--lr"), "{e}");
    assert!(k.contains("lr=") && !k.contains("--lr"), "{k}");
    // "Did you mean" only for a near name; serde's Rust type names become words.
    assert_eq!(Settings::nearest_key("lattent").as_deref(), Some("latent"));
    assert_eq!(Settings::nearest_key("foo"), None);
    let table: toml::Table = toml::from_str("latent = -2").unwrap();
    let e = Settings::from_table(table, "c", None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expected a whole number") && !e.contains("usize"),
        "{e}"
    );
}

/// An N×C×H×W array read with the other axis order is refused with the layout that reads it.
#[test]
fn a_wrong_layout_names_the_one_that_fits() {
    use elbo::data::numpy::{Layout, from_memory};
    let x = MemArray::uint8(vec![2, 1, 4, 4], vec![0; 32]);
    let e = from_memory(vec![x], Some(Layout::Nhwc), None, std::path::Path::new("x"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("4 channels") && e.contains("--layout nchw reads them as 1 channel"),
        "{e}"
    );
}

/// A library user's `main` returning an elbo error prints its one-line message, not the variant's fields.
#[test]
fn errors_debug_as_their_message() {
    let e = elbo::error::Error::Config("x: item 3 holds NaN".into());
    assert_eq!(format!("{e:?}"), "x: item 3 holds NaN");
    assert_eq!(format!("{e:?}"), e.to_string());
}
