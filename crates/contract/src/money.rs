//! Exact money: integer minor units of an ISO 4217 currency.

use std::fmt;

/// An ISO 4217 currency code (three ASCII upper-case letters).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a three-letter code; lower case is accepted and normalised.
    pub fn parse(code: &str) -> Option<Currency> {
        let b = code.as_bytes();
        if b.len() != 3 || !b.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        Some(Currency([
            b[0].to_ascii_uppercase(),
            b[1].to_ascii_uppercase(),
            b[2].to_ascii_uppercase(),
        ]))
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point of the currency's minor unit (ISO 4217).
    pub fn exponent(&self) -> u32 {
        match &self.0 {
            b"BIF" | b"CLP" | b"DJF" | b"GNF" | b"ISK" | b"JPY" | b"KMF" | b"KRW" | b"PYG"
            | b"RWF" | b"UGX" | b"UYI" | b"VND" | b"VUV" | b"XAF" | b"XOF" | b"XPF" => 0,
            b"BHD" | b"IQD" | b"JOD" | b"KWD" | b"LYD" | b"OMR" | b"TND" => 3,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exact, non-negative amount in minor units of `currency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Money {
    /// Amount in minor units (cents for USD).
    pub minor: i64,
    /// The currency of `minor`.
    pub currency: Currency,
}

/// Why a decimal amount could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    /// Not a plain decimal (`12`, `12.5`, `0.99`).
    Syntax,
    /// Below zero.
    Negative,
    /// More fractional digits than the currency has, other than trailing zeros.
    TooPrecise,
    /// Does not fit in 64-bit minor units.
    Overflow,
}

/// Leading zeros or nines past the currency's digits that make an amount
/// a binary float's rendering of a decimal one rather than a finer amount.
const NOISE_DIGITS: usize = 3;

/// What the digits past the currency's own add, in minor units: nothing
/// when they are zeros; when they are a float's noise (`59.980000000000004`
/// or `19.989999999999998`, what a storefront summing prices in JavaScript
/// sends), the rounding to the nearest minor unit (0 or 1); `None` for a
/// finer amount (`1.005` dollars).
fn float_noise(dropped: &str) -> Option<i64> {
    let b = dropped.as_bytes();
    let lead = |d: u8| b.iter().take_while(|&&c| c == d).count();
    if lead(b'0') == b.len() || lead(b'0') >= NOISE_DIGITS {
        Some(0)
    } else if lead(b'9') >= NOISE_DIGITS {
        Some(1)
    } else {
        None
    }
}

/// Parses a plain decimal (`"12.30"`, `7`, `0.5`) into minor units with
/// `exponent` fractional digits, exactly, without floating point. Digits
/// past the currency's are a float's noise and rounded away when they
/// start with [`NOISE_DIGITS`] zeros or nines, and an error otherwise.
/// An exponent form (`1e3`) is rejected as syntax.
pub fn parse_minor(text: &str, exponent: u32) -> Result<i64, AmountError> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return Err(AmountError::Syntax);
    }
    let frac = frac.unwrap_or("");
    let (kept, dropped) = frac.split_at(frac.len().min(exponent as usize));
    let carry = float_noise(dropped).ok_or(AmountError::TooPrecise)?;
    let mut v: i64 = 0;
    for c in int.bytes().chain(kept.bytes()) {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(c - b'0')))
            .ok_or(AmountError::Overflow)?;
    }
    for _ in kept.len()..exponent as usize {
        v = v.checked_mul(10).ok_or(AmountError::Overflow)?;
    }
    v = v.checked_add(carry).ok_or(AmountError::Overflow)?;
    if neg && v != 0 {
        return Err(AmountError::Negative);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimals_exactly() {
        assert_eq!(parse_minor("12.30", 2), Ok(1230));
        assert_eq!(parse_minor("12.3", 2), Ok(1230));
        assert_eq!(parse_minor("12", 2), Ok(1200));
        assert_eq!(parse_minor("0.10", 2), Ok(10));
        assert_eq!(parse_minor("35.790", 2), Ok(3579));
        assert_eq!(parse_minor("1500", 0), Ok(1500));
        assert_eq!(parse_minor("1.005", 3), Ok(1005));
        assert_eq!(parse_minor("-0", 2), Ok(0));
    }

    #[test]
    fn a_float_s_noise_past_the_currency_s_digits_is_rounded_away() {
        assert_eq!(parse_minor("59.980000000000004", 2), Ok(5998));
        assert_eq!(parse_minor("0.30000000000000004", 2), Ok(30));
        assert_eq!(parse_minor("19.989999999999998", 2), Ok(1999));
        assert_eq!(parse_minor("0.9999999999999999", 2), Ok(100));
        assert_eq!(parse_minor("99.99999", 2), Ok(10_000));
        assert_eq!(parse_minor("99.999", 2), Err(AmountError::TooPrecise));
        assert_eq!(parse_minor("1499.9999999998", 0), Ok(1500));
        assert_eq!(parse_minor("12.345000000001", 3), Ok(12_345));
        // A finer amount is not noise: the third decimal of a dollar, a
        // fuel price's tenth of a cent, a converted amount.
        assert_eq!(
            parse_minor("1.0049999999999999", 2),
            Err(AmountError::TooPrecise)
        );
        assert_eq!(parse_minor("3.499", 2), Err(AmountError::TooPrecise));
        assert_eq!(parse_minor("12.3456", 2), Err(AmountError::TooPrecise));
        assert_eq!(parse_minor("1.00990", 2), Err(AmountError::TooPrecise));
        assert_eq!(parse_minor("1.0099", 2), Err(AmountError::TooPrecise));
        assert_eq!(
            parse_minor("92233720368547758.079999", 2),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn rejects_what_is_not_exact_money() {
        assert_eq!(parse_minor("-1.00", 2), Err(AmountError::Negative));
        assert_eq!(parse_minor("1.005", 2), Err(AmountError::TooPrecise));
        assert_eq!(parse_minor("1e3", 2), Err(AmountError::Syntax));
        assert_eq!(parse_minor("", 2), Err(AmountError::Syntax));
        assert_eq!(parse_minor(".5", 2), Err(AmountError::Syntax));
        assert_eq!(parse_minor("5.", 2), Err(AmountError::Syntax));
        assert_eq!(parse_minor("NaN", 2), Err(AmountError::Syntax));
        assert_eq!(
            parse_minor("99999999999999999999", 2),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn currency_codes_normalise_and_know_their_exponent() {
        assert_eq!(Currency::parse("usd").unwrap().as_str(), "USD");
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().exponent(), 3);
        assert!(Currency::parse("US").is_none());
        assert!(Currency::parse("U$D").is_none());
    }
}
