//! A model's shape summary, printed when training starts, as Keras's `model.summary()`: each layer with its
//! output shape and number of weights, then the totals.

use super::config::{Likelihood, ModelConfig, SigmaMode};
use super::net::Net;
use crate::core::params::Counter;
use crate::error::Result;
use std::fmt::Write;

/// The summary of `cfg` as a text table (one layer a line), computed without allocating the weights.
pub fn table(cfg: &ModelConfig) -> Result<String> {
    let arch = cfg.build(&mut Counter::default())?;
    let mut rows: Vec<(String, String, usize)> = Vec::new();
    let input = cfg.item_shape();
    rows.push(("input".into(), input.to_string(), 0));
    let add = |prefix: &str, net: &Net, rows: &mut Vec<(String, String, usize)>| {
        for (i, layer) in net.layers.iter().enumerate() {
            let (kind, out) = layer.describe();
            let mut params = layer.param_count();
            let kind = match net.norms[i] {
                Some(bn) => {
                    params += 2 * bn.channels;
                    format!("{kind} + BatchNorm")
                }
                None => kind.to_string(),
            };
            if let Some(c) = net.cond
                && c.at == i
            {
                params += c.classes * layer.out_len();
            }
            rows.push((format!("{prefix}.{i} {kind}"), out, params));
        }
    };
    add("encoder", &arch.encoder, &mut rows);
    let head = if cfg.is_variational() {
        format!("μ, log σ² ({} each)", cfg.latent)
    } else {
        format!("z ({})", cfg.latent)
    };
    let name = if arch.stack.is_some() {
        "latent z1"
    } else {
        "latent"
    };
    rows.push((name.into(), head, 0));
    if let Some(f) = &arch.flow {
        rows.push(("flow".into(), f.describe(), f.param_count()));
    }
    // The layers above in the order data flows: up through the inference networks, then down the generative ones.
    let upper: Vec<_> = arch.stack.iter().flat_map(|s| &s.layers).collect();
    for (i, l) in upper.iter().enumerate() {
        let n = i + 2;
        add(&format!("q{n}"), &l.q, &mut rows);
        rows.push((
            format!("latent z{n}"),
            format!("μ, log σ² ({} each)", l.dim),
            0,
        ));
    }
    for (i, l) in upper.iter().enumerate().rev() {
        add(&format!("p{}", i + 2), &l.p, &mut rows);
    }
    add("decoder", &arch.decoder, &mut rows);
    if let Some((_, n)) = arch.log_sigma {
        let what = match cfg.likelihood {
            Likelihood::Gaussian {
                learn: SigmaMode::Global,
                ..
            }
            | Likelihood::Logistic {
                learn: SigmaMode::Global,
                ..
            } => "one",
            _ => "per value",
        };
        let name = match cfg.likelihood {
            Likelihood::Logistic { .. } => "log scale",
            _ => "log σ",
        };
        rows.push((format!("{name} ({what})"), format!("{n}"), n));
    }
    if let Some(m) = arch.prior {
        let n = m.components * (2 * m.dim + 1);
        rows.push((
            format!("prior: mixture of {}", m.components),
            format!("{}x{} means, log σ², weights", m.components, m.dim),
            n,
        ));
    }
    if let Some(v) = arch.vamp {
        let k = v.components();
        rows.push((
            format!("prior: VampPrior of {k}"),
            format!("{k}x{} pseudo-inputs (encoded by the encoder)", v.input),
            k * v.input,
        ));
    }
    if let Some(d) = &arch.discriminator {
        let widths: Vec<String> = cfg.discriminator.iter().map(|w| w.to_string()).collect();
        rows.push((
            "discriminator (training only)".into(),
            format!("{}-{}-2 leaky ReLU 0.2", cfg.latent, widths.join("-")),
            d.net.layers.iter().map(|l| l.param_count()).sum(),
        ));
    }
    let total: usize = rows.iter().map(|r| r.2).sum();
    let w0 = rows
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let w1 = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .max(12);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<w0$}  {:<w1$}  {:>10}",
        "layer", "output shape", "params"
    );
    for (name, shape, p) in &rows {
        let p = if *p == 0 {
            String::new()
        } else {
            p.to_string()
        };
        let _ = writeln!(s, "{name:<w0$}  {shape:<w1$}  {p:>10}");
    }
    let _ = writeln!(
        s,
        "total: {total} weights ({:.1} MB as f32)",
        total as f64 * 4e-6
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_agree_with_the_parameter_count() {
        let mut normed = ModelConfig::keras_conv();
        normed.batch_norm = true;
        let mut mixture = ModelConfig::pytorch_example();
        mixture.prior = crate::model::config::PriorSpec::Mixture { components: 7 };
        let stacked = ModelConfig {
            upper: vec![crate::model::config::UpperSpec {
                latent: 50,
                hidden: vec![100, 100],
            }],
            ..ModelConfig::pytorch_example()
        };
        assert!(table(&stacked).unwrap().contains("latent z2"));
        let mut vamp = ModelConfig::pytorch_example();
        vamp.prior = crate::model::config::PriorSpec::Vamp { components: 9 };
        let mut factor = ModelConfig::pytorch_example();
        factor.discriminator = vec![30, 20];
        assert!(
            table(&factor)
                .unwrap()
                .contains("discriminator (training only)")
        );
        for cfg in [
            factor,
            ModelConfig::pytorch_example(),
            ModelConfig::keras_conv(),
            normed,
            mixture,
            stacked,
            vamp,
        ] {
            let t = table(&cfg).unwrap();
            let total = format!("total: {} weights", cfg.param_count().unwrap());
            assert!(t.contains(&total), "{t}");
        }
        let t = table(&ModelConfig::pytorch_example()).unwrap();
        assert!(t.contains("encoder.0 Dense") && t.contains("314000"), "{t}");
    }
}
