//! Charts drawn with `plotters`: the latent scatter coloured by class and the training curves, as PNG or SVG.
//!
//! Text uses DejaVu Sans, bundled in the binary, so charts look the same on machines without fonts.

use super::latent as lat;
use super::run_title;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::train::{Checkpoint, EpochMetrics};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
pub(crate) const FAMILY: &str = "sans-serif";

/// Paul Tol's colour-blind-safe "muted" scheme (nine colours) plus a dark grey for a tenth class.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0x33, 0x22, 0x88),
    RGBColor(0x88, 0xcc, 0xee),
    RGBColor(0x44, 0xaa, 0x99),
    RGBColor(0x11, 0x77, 0x33),
    RGBColor(0x99, 0x99, 0x33),
    RGBColor(0xdd, 0xcc, 0x77),
    RGBColor(0xcc, 0x66, 0x77),
    RGBColor(0x88, 0x22, 0x55),
    RGBColor(0xaa, 0x44, 0x99),
    RGBColor(0x4d, 0x4d, 0x4d),
];
const TRAIN: RGBColor = RGBColor(0x44, 0x77, 0xaa);
const TEST: RGBColor = RGBColor(0xee, 0x66, 0x77);

pub(crate) fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bundled font is valid; should registration ever fail, plotters reports it when drawing text.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

fn draw_err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Config(format!("cannot draw {}: {e:?}", path.display()))
}

/// Renders with `draw` at `size` into `path`, as SVG when it ends in `.svg`, else PNG; written atomically.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl Fn(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
    draw_svg: impl Fn(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    let svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if svg {
        let mut s = String::new();
        {
            let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
            draw_svg(&root)?;
            root.present().map_err(draw_err(path))?;
        }
        return write_atomic(path, s.as_bytes());
    }
    let mut buf = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(draw_err(path))?;
    }
    let img = image::RgbImage::from_raw(size.0, size.1, buf).expect("buffer matches size");
    write_atomic(path, &super::png_bytes(&img, path)?)
}

/// What a scatter plot shows.
pub struct Scatter<'a> {
    /// Point coordinates.
    pub points: &'a [[f64; 2]],
    /// Class of each point (empty: unlabelled, drawn in one colour without a legend).
    pub labels: &'a [u32],
    /// Name of each class, for the legend.
    pub class_names: &'a [String],
    /// Title above the plot.
    pub title: String,
    /// Horizontal axis label.
    pub x_label: String,
    /// Vertical axis label.
    pub y_label: String,
}

fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let span = (hi - lo).max(1e-6);
    (lo - 0.05 * span)..(hi + 0.05 * span)
}

fn scatter_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &Scatter<'_>,
    path: &Path,
) -> Result<()> {
    let e = draw_err(path);
    root.fill(&WHITE).map_err(&e)?;
    let (w, _) = root.dim_in_pixel();
    let (plot, legend) = root.split_horizontally(w.saturating_sub(170));
    let xs = s.points.iter().map(|p| p[0]);
    let ys = s.points.iter().map(|p| p[1]);
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let mut chart = ChartBuilder::on(&plot)
        .caption(&s.title, (FAMILY, 22))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(65)
        .build_cartesian_2d(padded(x0, x1), padded(y0, y1))
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc(&s.x_label)
        .y_desc(&s.y_label)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(&e)?;
    if s.labels.is_empty() {
        let colour = PALETTE[0];
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|p| Circle::new((p[0], p[1]), 2, colour.mix(0.7).filled())),
            )
            .map_err(&e)?;
        legend.fill(&WHITE).map_err(&e)?;
        return Ok(());
    }
    let classes = s.labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    for c in 0..classes {
        let colour = PALETTE[c % PALETTE.len()];
        let pts = s
            .points
            .iter()
            .zip(s.labels)
            .filter(|(_, l)| **l as usize == c);
        chart
            .draw_series(pts.map(|(p, _)| Circle::new((p[0], p[1]), 2, colour.mix(0.7).filled())))
            .map_err(&e)?;
    }
    // The legend has its own column beside the plot, so it never hides points or gets clipped; past what fits,
    // it says how many classes it leaves out.
    legend.fill(&WHITE).map_err(&e)?;
    legend
        .draw(&Text::new("class", (10, 60), (FAMILY, 17).into_font()))
        .map_err(&e)?;
    let (_, h) = legend.dim_in_pixel();
    let fits = ((h as usize).saturating_sub(120) / 24).max(1);
    if classes > fits {
        legend
            .draw(&Text::new(
                format!("… and {} more", classes - fits + 1),
                (10, 90 + 24 * (fits as i32 - 1)),
                (FAMILY, 15).into_font(),
            ))
            .map_err(&e)?;
    }
    for c in 0..classes.min(if classes > fits { fits - 1 } else { fits }) {
        let y = 90 + 24 * c as i32;
        let colour = PALETTE[c % PALETTE.len()];
        legend
            .draw(&Circle::new((18, y + 7), 6, colour.filled()))
            .map_err(&e)?;
        let name = s.class_names.get(c).map_or("?", String::as_str);
        let name: String = if name.chars().count() > 18 {
            name.chars().take(17).chain(['…']).collect()
        } else {
            name.to_string()
        };
        legend
            .draw(&Text::new(name, (32, y), (FAMILY, 15).into_font()))
            .map_err(&e)?;
    }
    Ok(())
}

/// Draws a scatter of points coloured by class, with a legend, into a PNG or SVG file.
pub fn scatter(s: &Scatter<'_>, path: &Path) -> Result<()> {
    render(
        path,
        (900, 700),
        |r| scatter_on(r, s, path),
        |r| scatter_on(r, s, path),
    )
}

fn curves_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    history: &[EpochMetrics],
    title: &str,
    path: &Path,
) -> Result<()> {
    let e = draw_err(path);
    root.fill(&WHITE).map_err(&e)?;
    let (top, bottom) = root.split_vertically(40);
    top.draw(&Text::new(
        title.to_string(),
        (15, 10),
        (FAMILY, 20).into_font(),
    ))
    .map_err(&e)?;
    let panels = bottom.split_evenly((1, 3));
    type Pick = fn(&crate::train::SplitMetrics) -> f64;
    let metrics: [(&str, Pick, SeriesLabelPosition); 3] = [
        ("-ELBO", |m| m.neg_elbo, SeriesLabelPosition::UpperRight),
        (
            "reconstruction",
            |m| m.recon,
            SeriesLabelPosition::UpperRight,
        ),
        ("KL", |m| m.kl, SeriesLabelPosition::LowerRight),
    ];
    let last = history.last().map_or(1, |h| h.epoch) as f64;
    for (panel, (name, pick, pos)) in panels.iter().zip(metrics) {
        let vals = history.iter().flat_map(|h| [pick(&h.train), pick(&h.test)]);
        let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        let first = history.first().map_or(1, |h| h.epoch) as f64;
        let mut chart = ChartBuilder::on(panel)
            .caption(name, (FAMILY, 18))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((first - 0.5)..(last + 0.5), padded(lo, hi))
            .map_err(&e)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("nats per image")
            .x_labels(history.len().clamp(2, 10))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 15))
            .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(&e)?;
        for (label, colour, is_test) in [("train", TRAIN, false), ("test", TEST, true)] {
            let pts: Vec<(f64, f64)> = history
                .iter()
                .map(|h| {
                    (
                        h.epoch as f64,
                        pick(if is_test { &h.test } else { &h.train }),
                    )
                })
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                .map_err(&e)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(&e)?;
        }
        chart
            .configure_series_labels()
            .position(pos)
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(0xbb, 0xbb, 0xbb))
            .draw()
            .map_err(&e)?;
    }
    Ok(())
}

/// Draws train and test −ELBO, reconstruction and KL against epoch into a PNG or SVG file.
pub fn training_curves(history: &[EpochMetrics], title: &str, path: &Path) -> Result<()> {
    if history.is_empty() {
        return Err(Error::Config(
            "the run has no completed epoch to plot yet".into(),
        ));
    }
    render(
        path,
        (1500, 480),
        |r| curves_on(r, history, title, path),
        |r| curves_on(r, history, title, path),
    )
}

/// Scatters the encoder means of `ds` by class into `out`, as the raw axes up to two dimensions, PCA beyond.
pub fn write_latent_plot(
    ck: &Checkpoint,
    run_dir: &Path,
    ds: &Dataset,
    split: &str,
    out: &Path,
) -> Result<()> {
    let zd = ck.vae.latent();
    let idx: Vec<usize> = (0..ds.len()).collect();
    let means = lat::encode(&ck.vae, ds, &idx);
    let n = idx.len();
    let (points, x_label, y_label) = match zd {
        1 => (
            means
                .iter()
                .enumerate()
                .map(|(i, &m)| {
                    [
                        m as f64,
                        if ds.is_labelled() {
                            ds.label(i) as f64
                        } else {
                            0.0
                        },
                    ]
                })
                .collect(),
            "z₀ (encoder mean)".to_string(),
            if ds.is_labelled() { "class" } else { "" }.to_string(),
        ),
        2 => (
            means
                .chunks_exact(2)
                .map(|m| [m[0] as f64, m[1] as f64])
                .collect(),
            "z₀ (encoder mean)".to_string(),
            "z₁ (encoder mean)".to_string(),
        ),
        _ => {
            let (p, frac) = lat::pca2(&means, n, zd);
            (
                p,
                format!(
                    "PC 1 of the {zd}-D encoder means ({:.1}% of variance)",
                    100.0 * frac[0]
                ),
                format!("PC 2 ({:.1}% of variance)", 100.0 * frac[1]),
            )
        }
    };
    let names = if ck.config.data.classes.is_empty() {
        ds.classes.clone()
    } else {
        ck.config.data.classes.clone()
    };
    let what = if ds.kind == crate::data::Kind::Image {
        "images"
    } else {
        "items"
    };
    let title = run_title(&format!("Latent means of {n} {split} {what}"), run_dir);
    let chart = Scatter {
        points: &points,
        labels: ds.labels.as_deref().unwrap_or(&[]),
        class_names: &names,
        title,
        x_label,
        y_label,
    };
    scatter(&chart, out)
}
