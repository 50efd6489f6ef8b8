//! GSL's `odeiv2` methods as data: the steppers' Runge-Kutta tables and the scaled step
//! control, shared by the interpreter's driver (`runtime::gsl`) and the GPU's
//! (`wgsl::writer::gsl_driver`), so that both take the same steps.

use std::sync::OnceLock;

mod tables;

/// The scaled control's constants (GSL's `std_control_hadjust`, GSL >= 2.5): a step whose
/// error ratio exceeds `DECREASE_ABOVE` is retried smaller (by `SAFETY / r^(1/order)`, at
/// most `1 / MAX_DECREASE`-fold); below `INCREASE_BELOW` the next one grows (by
/// `SAFETY / r^(1/(order+1))`, at most `MAX_GROWTH`-fold).
pub const SAFETY: f64 = 0.9;
pub const DECREASE_ABOVE: f64 = 1.1;
pub const INCREASE_BELOW: f64 = 0.5;
pub const MAX_DECREASE: f64 = 0.2;
pub const MAX_GROWTH: f64 = 4.9;

/// GSL's steppers (`gsl_odeiv2_step_<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stepper {
    Rk2,
    Rk4,
    Rkf45,
    Rkck,
    Rk8pd,
}

impl Stepper {
    pub fn from_name(name: &str) -> Option<Stepper> {
        Some(match name {
            "rk2" => Stepper::Rk2,
            "rk4" => Stepper::Rk4,
            "rkf45" => Stepper::Rkf45,
            "rkck" => Stepper::Rkck,
            "rk8pd" => Stepper::Rk8pd,
            _ => return None,
        })
    }

    pub fn tableau(self) -> &'static Tableau {
        static TABLES: OnceLock<[Tableau; 5]> = OnceLock::new();
        let t = TABLES.get_or_init(|| {
            [
                tables::rk2(),
                tables::rk4_doubling(),
                tables::rkf45(),
                tables::rkck(),
                tables::rk8pd(),
            ]
        });
        &t[self as usize]
    }
}

/// An explicit Runge-Kutta method with an error estimate: stage `i` is evaluated at
/// `t + c[i] h`, `y + h * sum_j a[i][j] k[j]`; the step returns `y + h * sum b[i] k[i]`
/// and estimates its error as `h * sum e[i] k[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tableau {
    pub c: Vec<f64>,
    /// Row `i` has `i` entries.
    pub a: Vec<Vec<f64>>,
    pub b: Vec<f64>,
    pub e: Vec<f64>,
    /// The order GSL's error control scales steps with (`gsl_odeiv2_step_order`).
    pub order: u32,
}

impl Tableau {
    pub fn stages(&self) -> usize {
        self.c.len()
    }
}

/// GSL's verdict on an attempted step (`gsl_odeiv2_control_hadjust` with the scaled
/// control, `eps_abs` = 1 and the per-variable absolute errors as `scale_abs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Adjust {
    /// The error exceeds the tolerance: retry with this smaller step.
    Decrease(f64),
    /// Accept; the next step may be this one (larger, or the same).
    Keep(f64),
}

/// `rmax` is the largest |error| / allowed error over the variables (at least the
/// smallest positive double, as in GSL). Steps shrink at most fivefold and grow at most
/// 4.9-fold (the scaled control's limit since GSL 2.5).
pub fn adjust(rmax: f64, h: f64, order: u32) -> Adjust {
    if rmax > DECREASE_ABOVE {
        let r = (SAFETY / rmax.powf(1.0 / order as f64)).max(MAX_DECREASE);
        Adjust::Decrease(r * h)
    } else if rmax < INCREASE_BELOW {
        let r = (SAFETY / rmax.powf(1.0 / (order as f64 + 1.0))).clamp(1.0, MAX_GROWTH);
        Adjust::Keep(r * h)
    } else {
        Adjust::Keep(h)
    }
}

/// Why an element's integration failed (Brian2 raises an `IntegrationError`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure {
    /// The error control asks for a step below what changes t (adaptive).
    Tolerance,
    /// More than `max_steps` steps in one dt (adaptive).
    MaxSteps,
    /// The error of the fixed step exceeds the tolerance.
    FixedStep,
}

impl Failure {
    pub fn code(self) -> u32 {
        match self {
            Failure::Tolerance => 1,
            Failure::MaxSteps => 2,
            Failure::FixedStep => 3,
        }
    }

    pub fn from_code(code: u32) -> Option<Failure> {
        Some(match code {
            1 => Failure::Tolerance,
            2 => Failure::MaxSteps,
            3 => Failure::FixedStep,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each tableau is consistent (rows sum to their node, weights to one, error weights
    /// to zero) and integrates polynomials of its order exactly: checked on y' = t^p.
    #[test]
    fn tableaus_are_consistent_and_of_their_order() {
        for s in [
            Stepper::Rk2,
            Stepper::Rk4,
            Stepper::Rkf45,
            Stepper::Rkck,
            Stepper::Rk8pd,
        ] {
            let t = s.tableau();
            let n = t.stages();
            assert_eq!(t.a.len(), n);
            assert_eq!(t.b.len(), n);
            assert_eq!(t.e.len(), n);
            for (i, row) in t.a.iter().enumerate() {
                assert_eq!(row.len(), i, "{s:?} row {i}");
                let sum: f64 = row.iter().sum();
                assert!(
                    (sum - t.c[i]).abs() < 1e-12,
                    "{s:?} row {i}: {sum} vs {}",
                    t.c[i]
                );
            }
            let sb: f64 = t.b.iter().sum();
            assert!((sb - 1.0).abs() < 1e-12, "{s:?}: b sums to {sb}");
            let se: f64 = t.e.iter().sum();
            assert!(se.abs() < 1e-12, "{s:?}: e sums to {se}");
            // Quadrature order: sum b_i c_i^(p-1) = 1/p for p up to the solution's order.
            let sol_order = match s {
                Stepper::Rk2 => 3,
                Stepper::Rk4 => 4,
                Stepper::Rkf45 | Stepper::Rkck => 5,
                Stepper::Rk8pd => 8,
            };
            for p in 1..=sol_order {
                let q: f64 = (0..n).map(|i| t.b[i] * t.c[i].powi(p - 1)).sum();
                assert!((q - 1.0 / p as f64).abs() < 1e-11, "{s:?} p={p}: {q}");
            }
            // A full order condition beyond quadrature: sum b_i a_ij c_j = 1/6.
            if sol_order >= 3 {
                let q: f64 = (0..n)
                    .map(|i| (0..i).map(|j| t.b[i] * t.a[i][j] * t.c[j]).sum::<f64>())
                    .sum();
                assert!((q - 1.0 / 6.0).abs() < 1e-11, "{s:?}: {q}");
            }
        }
    }

    #[test]
    fn control_follows_gsl_thresholds() {
        assert_eq!(adjust(0.7, 1.0, 5), Adjust::Keep(1.0));
        match adjust(2.0, 1.0, 5) {
            Adjust::Decrease(h) => assert!((h - 0.9 / 2f64.powf(0.2)).abs() < 1e-15),
            a => panic!("{a:?}"),
        }
        // No more than fivefold smaller, 4.9-fold larger.
        assert_eq!(adjust(1e30, 1.0, 5), Adjust::Decrease(0.2));
        assert_eq!(adjust(f64::MIN_POSITIVE, 1.0, 5), Adjust::Keep(4.9));
        match adjust(0.4, 1.0, 5) {
            Adjust::Keep(h) => assert!((h - 0.9 / 0.4f64.powf(1.0 / 6.0)).abs() < 1e-15),
            a => panic!("{a:?}"),
        }
    }
}
