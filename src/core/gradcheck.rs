//! Central finite differences in f64, shared by every layer's gradient test.

/// Asserts that `grad` matches the central difference of `loss` at `x`, element by element.
pub fn check_gradients(x: &[f64], grad: &[f64], loss: impl Fn(&[f64]) -> f64, what: &str) {
    let h = 1e-6;
    let mut xp = x.to_vec();
    // Central differences of a loss L carry a rounding error near f64::EPSILON·|L|/h; allow five times that.
    let noise = 1e-8f64.max(5.0 * f64::EPSILON * loss(x).abs() / h);
    let mut worst = 0.0f64;
    for i in 0..x.len() {
        xp[i] = x[i] + h;
        let up = loss(&xp);
        xp[i] = x[i] - h;
        let down = loss(&xp);
        xp[i] = x[i];
        let numeric = (up - down) / (2.0 * h);
        let err = (numeric - grad[i]).abs() / (1e-6 + numeric.abs().max(grad[i].abs()));
        worst = worst.max(err);
        assert!(
            err < 1e-5 || (numeric - grad[i]).abs() < noise,
            "{what}[{i}]: analytic {} vs numeric {numeric}",
            grad[i]
        );
    }
    assert!(worst.is_finite(), "{what}: non-finite gradient");
}
