//! The five C math functions the binary calls, defined here from the `libm` crate (Rust's
//! port of musl's libm) so that the system's `libm.so.6` is not loaded at all. Who calls
//! them: the demo's simulated trainer (`sin`, `cos`, `exp`), indicatif's rate estimate
//! (`pow`) and SQLite's FTS5 ranking (`log`). Loading libm only for these maps its code
//! and runs its IFUNC resolvers at every start: 0.3 MiB of a console's resident memory
//! (docs/performance.md, "libm"). The linker resolves the calls to these definitions
//! first and, with `--as-needed`, leaves libm out of the binary's needed libraries; a
//! test (`the_binary_does_not_load_libm`) checks both. They are kept out of the binary's
//! dynamic symbols (`assets/libm-shim.map`, passed by build.rs; the linker would export
//! them otherwise), so a library loaded later (NVML) binds to its own libm
//! (`the_binary_does_not_export_its_math_functions`).
//!
//! musl's functions are correctly rounded or within one ulp, as glibc's are; every use
//! here is a simulation, an estimate or a ranking.

// SAFETY (for each `no_mangle` below): the name is the C function's, with its C signature
// (`double f(double[, double])`), and the body is the `libm` crate's implementation of the
// same function, which calls no C function back.

/// `pow(3)`.
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// `log(3)`.
#[unsafe(no_mangle)]
pub extern "C" fn log(x: f64) -> f64 {
    libm::log(x)
}

/// `exp(3)`.
#[unsafe(no_mangle)]
pub extern "C" fn exp(x: f64) -> f64 {
    libm::exp(x)
}

/// `sin(3)`.
#[unsafe(no_mangle)]
pub extern "C" fn sin(x: f64) -> f64 {
    libm::sin(x)
}

/// `cos(3)`.
#[unsafe(no_mangle)]
pub extern "C" fn cos(x: f64) -> f64 {
    libm::cos(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_functions_agree_with_known_values() {
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert_eq!(pow(9.0, 0.5), 3.0);
        assert!(pow(-8.0, 1.0 / 3.0).is_nan(), "C's pow: a negative base to a non-integer power");
        assert_eq!(log(1.0), 0.0);
        assert!((log(std::f64::consts::E) - 1.0).abs() <= f64::EPSILON);
        assert!(log(-1.0).is_nan() && log(0.0) == f64::NEG_INFINITY);
        assert!((exp(1.0) - std::f64::consts::E).abs() <= f64::EPSILON * 4.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert!((sin(std::f64::consts::FRAC_PI_2) - 1.0).abs() <= f64::EPSILON);
        assert!((cos(std::f64::consts::PI) + 1.0).abs() <= f64::EPSILON);
        assert_eq!(sin(0.0), 0.0);
    }

    /// Rust's own `f64` methods in this binary are lowered to calls of these symbols: they
    /// must give the same answers (the calls are resolved here, not in the system libm).
    #[test]
    fn the_std_methods_give_the_same_answers() {
        for x in [0.1f64, 0.5, 1.0, 2.5, 10.0, 123.456] {
            assert_eq!(x.exp(), exp(x));
            assert_eq!(x.ln(), log(x));
            assert_eq!(x.sin(), sin(x));
            assert_eq!(x.cos(), cos(x));
            assert_eq!(x.powf(1.7), pow(x, 1.7));
        }
    }
}
