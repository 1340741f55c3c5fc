//! `PhoneNumber`: a recipient's number, always in E.164 digits (`6281234567890`), and the
//! `CountryCode` used to complete local numbers. Parsing is the only way to get one, so every
//! number that reaches a provider or the database is normalised; `Debug` and `Display` mask all
//! but the last four digits, so logging one cannot leak it.

use serde::{Serialize, Serializer};

/// A calling code such as `62` (Indonesia): 1 to 3 digits, not starting with 0.
#[derive(Clone, PartialEq, Eq)]
pub struct CountryCode(String);

impl CountryCode {
    pub fn parse(raw: &str) -> Result<CountryCode, PhoneError> {
        let raw = raw.trim().trim_start_matches('+');
        let ok = (1..=3).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_digit())
            && !raw.starts_with('0');
        if ok {
            Ok(CountryCode(raw.to_string()))
        } else {
            Err(PhoneError::BadCountryCode)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "+{}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("empty phone number")]
    Empty,
    #[error(
        "phone number contains characters other than digits, spaces, dashes, dots and parentheses"
    )]
    BadCharacter,
    #[error("phone number must have 8 to 15 digits in international form")]
    BadLength,
    #[error("country code must be 1 to 3 digits, not starting with 0")]
    BadCountryCode,
}

/// An E.164 number without the `+`, as the WhatsApp Cloud API wants it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts the forms people write: `0812-3456-7890` (local, completed with
    /// `country`), `+62 812 3456 7890`, `0062812...`, `62812...`, and `812...` (local
    /// without the trunk 0).
    pub fn parse(raw: &str, country: &CountryCode) -> Result<PhoneNumber, PhoneError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        let (international, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
                _ => return Err(PhoneError::BadCharacter),
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        let e164 = if international {
            digits
        } else if let Some(rest) = digits.strip_prefix("00") {
            rest.to_string()
        } else if let Some(rest) = digits.strip_prefix('0') {
            format!("{}{}", country.as_str(), rest)
        } else if digits.starts_with(country.as_str()) {
            digits
        } else {
            format!("{}{}", country.as_str(), digits)
        };
        if !(8..=15).contains(&e164.len()) || e164.starts_with('0') {
            return Err(PhoneError::BadLength);
        }
        Ok(PhoneNumber(e164))
    }

    /// Wraps digits already normalised (read back from our own database or events).
    pub fn from_normalised(digits: &str) -> Result<PhoneNumber, PhoneError> {
        let ok = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(PhoneNumber(digits.to_string()))
        } else {
            Err(PhoneError::BadLength)
        }
    }

    /// The full number: for providers and the database only, never for logs.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `*********7890`: what logs may show.
    pub fn masked(&self) -> String {
        mask_phone(&self.0)
    }
}

/// Masks any phone-like text except its last four characters.
pub fn mask_phone(raw: &str) -> String {
    let n = raw.chars().count();
    raw.chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < n { '*' } else { c })
        .collect()
}

impl std::fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl std::fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> CountryCode {
        CountryCode::parse("62").unwrap()
    }

    #[test]
    fn every_common_form_normalises_to_the_same_digits() {
        for raw in [
            "0812-3456-7890",
            "+62 812 3456 7890",
            "6281234567890",
            "081234567890",
            "0062 812 3456 7890",
            "(0812) 3456.7890",
            "81234567890",
        ] {
            assert_eq!(
                PhoneNumber::parse(raw, &id()).unwrap().as_str(),
                "6281234567890",
                "{raw}"
            );
        }
    }

    #[test]
    fn other_countries_keep_their_code_when_written_with_a_plus() {
        let p = PhoneNumber::parse("+1 (415) 555-2671", &id()).unwrap();
        assert_eq!(p.as_str(), "14155552671");
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        assert_eq!(PhoneNumber::parse("", &id()), Err(PhoneError::Empty));
        assert_eq!(
            PhoneNumber::parse("0812-CALL-ME", &id()),
            Err(PhoneError::BadCharacter)
        );
        assert_eq!(
            PhoneNumber::parse("0812", &id()),
            Err(PhoneError::BadLength)
        );
        assert_eq!(
            PhoneNumber::parse("+62 812 3456 7890 1234 5", &id()),
            Err(PhoneError::BadLength)
        );
        assert_eq!(PhoneNumber::parse("+ -", &id()), Err(PhoneError::Empty));
    }

    #[test]
    fn logs_only_ever_see_the_last_four_digits() {
        let p = PhoneNumber::parse("0812-3456-7890", &id()).unwrap();
        assert_eq!(p.to_string(), "*********7890");
        assert_eq!(format!("{p:?}"), "PhoneNumber(*********7890)");
        assert!(!format!("{p:?}").contains("812345"));
    }

    #[test]
    fn country_codes_are_checked() {
        assert!(CountryCode::parse("62").is_ok());
        assert!(CountryCode::parse("+1").is_ok());
        assert!(CountryCode::parse("0").is_err());
        assert!(CountryCode::parse("1234").is_err());
        assert!(CountryCode::parse("6a").is_err());
    }
}
