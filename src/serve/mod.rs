//! The latent explorer behind `elbo serve`: a trained run, its test set encoded once, and the answers the
//! browser page asks for (points, images, codes, decodings). Requests are checked here, so every malformed
//! one becomes a message instead of a panic; `live` swaps in a newer checkpoint of the run on request, `hosts`
//! says which Host names are this machine's, and `http` puts this on the network.

pub mod hosts;
pub mod http;
pub mod live;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::figures::latent::{self as lat, Plane};
use crate::figures::{MosaicStyle, mosaic, png_bytes};
use crate::train::Checkpoint;
use serde_json::{Value, json};
use std::sync::Arc;

/// Most test images the scatter shows.
pub const MAX_POINTS: usize = 20_000;
/// Largest latent value a request may carry: far outside anything a prior or an encoder puts out, but finite
/// through the decoder.
pub const MAX_CODE: f64 = 1000.0;

/// A run ready to be explored.
pub struct Explorer {
    ck: Checkpoint,
    /// Shared with the explorers a reload builds, which show the same images.
    test: Arc<Dataset>,
    codes: Vec<f32>,
    plane: Plane,
    xy: Vec<[f64; 2]>,
    name: String,
    /// The sliders' span per latent dimension, and what it was taken from.
    ranges: Vec<[f64; 2]>,
    ranges_from: &'static str,
}

/// Draws from a learned prior that set the sliders' spans.
const RANGE_DRAWS: usize = 20_000;

/// The sliders' span per latent dimension, and what it was taken from: N(0, I)'s ±3σ; for a learned prior (a
/// mixture, a VampPrior), the same mass of its own draws, whose means may lie far from 0; for an autoencoder (no
/// prior), the codes' own range, padded by a tenth.
fn slider_ranges(ck: &Checkpoint, codes: &[f32], zd: usize) -> (Vec<[f64; 2]>, &'static str) {
    use rand::SeedableRng;
    if !ck.config.model.is_variational() {
        let ranges = (0..zd)
            .map(|j| {
                let col = codes.iter().skip(j).step_by(zd).map(|&v| v as f64);
                let (lo, hi) = col.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(v), b.max(v))
                });
                let pad = ((hi - lo) * 0.1).max(1e-3);
                [lo - pad, hi + pad]
            })
            .collect();
        return (ranges, "the test codes' range, padded by a tenth");
    }
    if ck.vae.prior().closed_form_kl().is_some() {
        return (vec![[-3.0, 3.0]; zd], "the prior N(0, I): ±3σ");
    }
    // A fixed seed: the page shows the same sliders every time the run is served.
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(0);
    let draws = ck.vae.draw_codes(RANGE_DRAWS, &mut rng, 1.0);
    let ranges = lat::sorted_columns(&draws, zd)
        .iter()
        .map(|col| {
            // ±3σ of a Gaussian hold all but 0.135 % on each side.
            let (lo, hi) = (
                lat::empirical_quantile(col, 0.00135),
                lat::empirical_quantile(col, 0.99865),
            );
            let pad = if hi > lo { 0.0 } else { 1e-3 };
            [(lo - pad).max(-MAX_CODE), (hi + pad).min(MAX_CODE)]
        })
        .collect();
    (
        ranges,
        "the learned prior: 0.135–99.865 % of 20000 of its draws (the mass of ±3σ)",
    )
}

/// A request that cannot be answered, with the reason for the page.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRequest(pub String);

impl Explorer {
    /// Encodes the first `points` images of `test` with the run's model and fits the plane the page shows.
    pub fn new(ck: Checkpoint, test: Dataset, points: usize, name: String) -> Result<Explorer> {
        check_points(points)?;
        Explorer::build(ck, Arc::new(test.truncated(points)), name)
    }

    fn build(ck: Checkpoint, test: Arc<Dataset>, name: String) -> Result<Explorer> {
        if ck.config.data.kind != crate::data::Kind::Image {
            return Err(Error::Config(
                "serve shows images, but this run's data are feature rows: use `elbo encode` and `elbo decode`"
                    .into(),
            ));
        }
        let idx: Vec<usize> = (0..test.len()).collect();
        let codes = lat::encode(&ck.vae, &test, &idx);
        let zd = ck.vae.latent();
        let plane = Plane::fit(&codes, test.len(), zd);
        let xy = codes.chunks_exact(zd).map(|z| plane.project(z)).collect();
        let (ranges, ranges_from) = slider_ranges(&ck, &codes, zd);
        Ok(Explorer {
            ck,
            test,
            codes,
            plane,
            xy,
            name,
            ranges,
            ranges_from,
        })
    }

    /// The same images explored with `ck`, a later checkpoint of the run; refused when `ck` was trained on
    /// other data or makes images of another shape, which the shown test images would not fit.
    pub fn reloaded(&self, ck: Checkpoint) -> Result<Explorer> {
        let (old, new) = (&self.ck.config, &ck.config);
        let mut same_training = new.train.clone();
        same_training.epochs = old.train.epochs;
        let same_data = old.data == new.data
            && old.model.item_shape() == new.model.item_shape()
            && old.model.classes == new.model.classes
            && (old.data.fingerprint.is_some() || old.train == same_training);
        if !same_data {
            return Err(Error::Config(format!(
                "the checkpoint in {} is now of another run (other data or image shape); restart elbo serve to explore it",
                self.name
            )));
        }
        Explorer::build(ck, self.test.clone(), self.name.clone())
    }

    /// Epochs the shown weights were trained for.
    pub fn epoch(&self) -> usize {
        self.ck.state.epoch
    }

    /// Latent dimensions.
    pub fn latent(&self) -> usize {
        self.ck.vae.latent()
    }

    /// Test images shown.
    pub fn len(&self) -> usize {
        self.test.len()
    }

    /// Whether no test image is shown (never, once built).
    pub fn is_empty(&self) -> bool {
        self.test.is_empty()
    }

    /// What the page needs to draw itself: the model, the data's shape and classes, and the plane.
    pub fn info(&self) -> Value {
        let m = &self.ck.config.model;
        let shape = m.item_shape();
        let zd = self.latent();
        json!({
            "run": self.name,
            "epoch": self.epoch(),
            "latent": zd,
            "height": shape.height,
            "width": shape.width,
            "channels": shape.channels,
            "variational": m.is_variational(),
            "conditional": m.is_conditional(),
            "classes": self.ck.config.data.classes,
            "labelled": self.test.is_labelled(),
            "points": self.len(),
            "plane": {
                "origin": self.plane.origin,
                "axes": self.plane.axes,
                "explained": self.plane.explained,
                "pca": zd > 2,
            },
            "ranges": self.ranges,
            "ranges_from": self.ranges_from,
        })
    }

    /// Every shown test image's plane coordinates, and its class (or 0).
    pub fn points(&self) -> Value {
        json!({
            "x": self.xy.iter().map(|p| p[0] as f32).collect::<Vec<f32>>(),
            "y": self.xy.iter().map(|p| p[1] as f32).collect::<Vec<f32>>(),
            "label": (0..self.len()).map(|i| self.test.label(i)).collect::<Vec<u32>>(),
        })
    }

    /// Test image `i`, as the model sees it, as a PNG.
    pub fn item_png(&self, i: &str) -> std::result::Result<Vec<u8>, BadRequest> {
        let i = self.index(i)?;
        self.png(&lat::pixels(&self.test, &[i]))
    }

    /// The decoded mean of test image `i`'s code (its reconstruction), as a PNG.
    pub fn reconstruction_png(&self, i: &str) -> std::result::Result<Vec<u8>, BadRequest> {
        let i = self.index(i)?;
        let zd = self.latent();
        let z = &self.codes[i * zd..(i + 1) * zd];
        self.png(&lat::decode_means(
            &self.ck.vae,
            z,
            1,
            &[self.test.label(i)],
        ))
    }

    /// Test image `i`'s code (the encoder mean, or z of an autoencoder).
    pub fn code(&self, i: &str) -> std::result::Result<Value, BadRequest> {
        let i = self.index(i)?;
        let zd = self.latent();
        Ok(json!({
            "z": &self.codes[i * zd..(i + 1) * zd],
            "label": self.test.label(i),
        }))
    }

    /// A code drawn from the model's prior with `seed` (a whole number): what `elbo sample` decodes, so the
    /// explorer's random codes follow a learned prior too. Refused for an autoencoder, which has no prior.
    pub fn prior_sample(&self, seed: Option<&str>) -> std::result::Result<Value, BadRequest> {
        use rand::SeedableRng;
        if !self.ck.config.model.is_variational() {
            return Err(BadRequest(
                "sample: an autoencoder has no prior to draw codes from".into(),
            ));
        }
        let seed = match seed {
            None => 0,
            Some(t) => t.parse::<u64>().map_err(|_| {
                BadRequest(format!(
                    "seed '{}' is not a whole number 0 or more",
                    clip(t)
                ))
            })?,
        };
        let vae = &self.ck.vae;
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
        let z = vae.draw_codes(1, &mut rng, 1.0);
        Ok(json!({ "z": z }))
    }

    /// The decoded mean of code `z` (comma-separated numbers), conditioned on `class` for a conditional
    /// model, as a PNG.
    pub fn decode_png(
        &self,
        z: Option<&str>,
        class: Option<&str>,
    ) -> std::result::Result<Vec<u8>, BadRequest> {
        let z = parse_code(z.unwrap_or(""), self.latent())?;
        let label = self.class(class)?;
        self.png(&lat::decode_means(&self.ck.vae, &z, 1, &[label]))
    }

    /// The class a decoding is conditioned on: required by a conditional model, refused by others.
    fn class(&self, class: Option<&str>) -> std::result::Result<u32, BadRequest> {
        let k = self.ck.config.model.classes;
        match (class, k) {
            (None, 0) => Ok(0),
            (Some(_), 0) => Err(BadRequest(
                "class: this model is not conditional; leave it out".into(),
            )),
            (None, _) => Err(BadRequest(format!(
                "class: this model is conditional; give class=0..{}",
                k - 1
            ))),
            (Some(c), _) => match c.parse::<usize>() {
                Ok(c) if c < k => Ok(c as u32),
                _ => Err(BadRequest(format!(
                    "class '{}' is not one of 0..{}",
                    clip(c),
                    k - 1
                ))),
            },
        }
    }

    fn index(&self, i: &str) -> std::result::Result<usize, BadRequest> {
        match i.parse::<usize>() {
            Ok(i) if i < self.len() => Ok(i),
            _ => Err(BadRequest(format!(
                "image '{}' is not one of 0..{}",
                clip(i),
                self.len() - 1
            ))),
        }
    }

    fn png(&self, pixels: &[f32]) -> std::result::Result<Vec<u8>, BadRequest> {
        let style = MosaicStyle {
            scale: 1,
            pad: 0,
            separators: false,
        };
        let shape = self.ck.config.model.item_shape();
        let img = mosaic(pixels, 1, shape, 1, style).map_err(|e| BadRequest(e.to_string()))?;
        let out = std::path::Path::new("image.png");
        match img {
            image::DynamicImage::ImageRgb8(b) => png_bytes(&b, out),
            image::DynamicImage::ImageLuma8(b) => png_bytes(&b, out),
            other => png_bytes(&other.to_rgb8(), out),
        }
        .map_err(|e| BadRequest(e.to_string()))
    }
}

/// Refuses a `--points` outside 1..=[`MAX_POINTS`]; checked before the run is opened.
pub fn check_points(points: usize) -> Result<()> {
    if !(1..=MAX_POINTS).contains(&points) {
        return Err(Error::Config(format!(
            "--points {points} must be between 1 and {MAX_POINTS}"
        )));
    }
    Ok(())
}

/// Parses a latent code of `dim` finite numbers within ±[`MAX_CODE`], comma-separated.
pub fn parse_code(s: &str, dim: usize) -> std::result::Result<Vec<f32>, BadRequest> {
    // A number takes at most a few dozen characters; anything longer is not a code.
    if s.len() > dim * 32 + 32 {
        return Err(BadRequest(format!(
            "z is {} characters long; it takes {dim} numbers",
            s.len()
        )));
    }
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() != dim {
        return Err(BadRequest(format!(
            "z has {} numbers; this model's latent has {dim}",
            if s.is_empty() { 0 } else { parts.len() }
        )));
    }
    parts
        .iter()
        .enumerate()
        .map(|(j, p)| match p.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v.abs() <= MAX_CODE => Ok(v as f32),
            Ok(_) => Err(BadRequest(format!(
                "z[{j}] = '{}' must be finite and within ±{MAX_CODE}",
                clip(p)
            ))),
            Err(_) => Err(BadRequest(format!(
                "z[{j}] = '{}' is not a number",
                clip(p)
            ))),
        })
        .collect()
}

/// The start of a user's text, for a message, with control characters escaped.
fn clip(s: &str) -> String {
    let mut c = String::new();
    for ch in s.chars().take(40) {
        if ch.is_control() {
            c.extend(ch.escape_default());
        } else {
            c.push(ch);
        }
    }
    if s.chars().count() > 40 {
        c.push('…');
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_checked() {
        assert_eq!(parse_code("0.5,-1", 2).unwrap(), vec![0.5, -1.0]);
        for (bad, why) in [
            ("", "has 0 numbers"),
            ("1", "has 1 numbers"),
            ("1,2,3", "has 3 numbers"),
            ("1,nan", "must be finite"),
            ("1,inf", "must be finite"),
            ("1,1e9", "within"),
            ("1,x", "is not a number"),
            ("1,", "is not a number"),
        ] {
            let e = parse_code(bad, 2).unwrap_err().0;
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = "1".repeat(200);
        assert!(
            parse_code(&long, 2)
                .unwrap_err()
                .0
                .contains("characters long")
        );
    }
}
