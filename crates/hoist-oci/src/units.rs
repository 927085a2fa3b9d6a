//! Byte sizes as Docker prints them (go-units' `HumanSize`: decimal units,
//! `kB`/`MB`/`GB`), the one convention of every table, progress bar and web
//! page hoist shows.

/// Sizes as Docker prints them: `units.HumanSizeWithPrecision(n, 3)`, decimal
/// units and Go's `%.3g` (`5.58MB`, `163MB`, `1e+03kB`).
pub fn human_size(n: u64) -> String {
    human_size_precision(n, 3)
}

/// `units.HumanSizeWithPrecision`: divide by 1000 until under 1000, then `%.{precision}g`.
pub fn human_size_precision(n: u64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(v, precision), UNITS[i])
}

/// Go's `%.{p}g` of a non-negative number: `p` significant digits, trailing
/// zeros dropped, an exponent when it is below -4 or at least `p`.
fn go_g(v: f64, p: usize) -> String {
    let p = p.max(1);
    if v == 0.0 {
        return "0".into();
    }
    // Rounding to p digits first tells the exponent after rounding (999.5 → 1.00e3).
    let e = format!("{v:.prec$e}", prec = p - 1);
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim(&format!("{v:.decimals$}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(47), "47B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(71_680), "71.7kB");
        assert_eq!(human_size(5_580_000), "5.58MB");
        assert_eq!(human_size(72_800_000), "72.8MB");
        assert_eq!(human_size(163_000_000), "163MB");
        assert_eq!(human_size(1_300_000_000), "1.3GB");
        // Go's %.3g switches to an exponent once rounding reaches 1000.
        assert_eq!(human_size(999_600), "1e+03kB");
        assert_eq!(human_size_precision(5_796_000, 4), "5.796MB");
    }
}
