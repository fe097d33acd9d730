//! Python 2's `str(float)`, which the original math server used for DIVISION
//! (spec: classic.md, "math"): C's `%.12g` (12 significant digits, fixed notation
//! for exponents -4..=11, exponential with a two-digit exponent otherwise,
//! trailing zeros removed), then `.0` appended when the text has no `.`, `e`,
//! `inf` or `nan`. So `8/2` → `4.0`, `0/-5` → `-0.0`, `1/3` → `0.333333333333`,
//! `1/32767` → `3.0518509476e-05`.

/// C's `%.12g`.
pub fn format_g12(x: f64) -> String {
    const P: i32 = 12;
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // The exponent %g decides with is the one of %e at precision P - 1, after
    // rounding (9.9999999999995 becomes 1.00000000000e1).
    let e_form = format!("{:.*e}", (P - 1) as usize, x);
    let (mantissa, exp) = e_form.split_once('e').unwrap_or((&e_form, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..P).contains(&exp) {
        let fixed = format!("{:.*}", (P - 1 - exp) as usize, x);
        strip_zeros(&fixed).to_string()
    } else {
        let m = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    }
}

/// Removes trailing zeros of a fraction, and the point if nothing is left of it.
fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Python 2's `str()` of a float.
pub fn py2_str(x: f64) -> String {
    let mut s = format_g12(x);
    if !(s.contains(['.', 'e']) || s.contains("inf") || s.contains("nan")) {
        s.push_str(".0");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_examples() {
        for (a, b, want) in [
            (8, 2, "4.0"),
            (0, -5, "-0.0"),
            (1, 3, "0.333333333333"),
            (2, 3, "0.666666666667"),
            (1, 32767, "3.0518509476e-05"),
            (1, -32768, "-3.0517578125e-05"),
            (-32768, -1, "32768.0"),
        ] {
            assert_eq!(py2_str(f64::from(a) / f64::from(b)), want, "{a}/{b}");
        }
    }

    #[test]
    fn g_format_edges() {
        assert_eq!(format_g12(1e12), "1e+12");
        assert_eq!(format_g12(999_999_999_999.0), "999999999999");
        assert_eq!(format_g12(0.0001), "0.0001");
        assert_eq!(format_g12(0.00001), "1e-05");
        assert_eq!(format_g12(9.999_999_999_999_5), "10");
        assert_eq!(format_g12(-2.5), "-2.5");
        assert_eq!(py2_str(f64::INFINITY), "inf");
        assert_eq!(py2_str(f64::NAN), "nan");
        assert_eq!(py2_str(1e300), "1e+300");
    }

    /// Every line of the table made by real Python 2.7 (`tests/data`).
    #[test]
    fn matches_python_2_on_300_divisions() {
        let table = include_str!("../tests/data/division_py2.txt");
        let mut n = 0;
        for line in table.lines() {
            let mut f = line.split(' ');
            let (a, b, want) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let (a, b): (i16, i16) = (a.parse().unwrap(), b.parse().unwrap());
            assert_eq!(py2_str(f64::from(a) / f64::from(b)), want, "{a}/{b}");
            n += 1;
        }
        assert!(n >= 200);
    }

    proptest::proptest! {
        /// An independent check over sampled i16 pairs: the text parses back to
        /// the quotient rounded to 12 significant digits, has no more than 12
        /// digits, and has the shape Python gives it.
        #[test]
        fn any_i16_division_has_python_shape(a: i16, b in proptest::prelude::Strategy::prop_filter(proptest::num::i16::ANY, "nonzero", |b| *b != 0)) {
            let x = f64::from(a) / f64::from(b);
            let s = py2_str(x);
            let rounded: f64 = format!("{x:.11e}").parse().unwrap();
            // Exact equality is the point: the text must name the same double.
            proptest::prop_assert_eq!(s.parse::<f64>().unwrap().to_bits(), rounded.to_bits());
            let mantissa: String = s.split('e').next().unwrap().chars().filter(char::is_ascii_digit).collect();
            proptest::prop_assert!(mantissa.trim_start_matches('0').len() <= 12, "{}", s);
            proptest::prop_assert!(s.contains('.') || s.contains('e'));
            if let Some((_, e)) = s.split_once('e') {
                proptest::prop_assert!(e.len() >= 3 && (e.starts_with('-') || e.starts_with('+')));
            }
        }
    }
}
