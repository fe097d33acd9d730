//! A bet, its text form on the wire and in CSV files, and its validation
//! (spec: lottery.md, "The domain" and "Durability and exactly-once": a malformed
//! bet rejects its whole batch, naming the field that is wrong).
//!
//! Text form: `nombre,apellido,documento,nacimiento,numero`, UTF-8, e.g.
//! `Agustín Emanuel,Zambrano,21689196,2000-05-10,9325`.

use std::fmt;

/// The number that wins the draw.
pub const WINNING_NUMBER: u16 = 7574;

/// Longest documento accepted (digits).
pub const MAX_DOCUMENTO: usize = 20;

/// One bet of one agency.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bet {
    /// First name(s).
    pub nombre: String,
    /// Last name(s).
    pub apellido: String,
    /// ID number, as a string so leading zeros survive.
    pub documento: String,
    /// Birth date, ISO `YYYY-MM-DD`.
    pub nacimiento: String,
    /// The number bet on, 0..=9999.
    pub numero: u16,
}

impl Bet {
    /// True if this bet wins the draw.
    pub fn wins(&self) -> bool {
        self.numero == WINNING_NUMBER
    }

    /// Parses and validates the text form.
    pub fn parse(text: &str) -> Result<Bet, BetError> {
        let fields: Vec<&str> = text.split(',').collect();
        let [nombre, apellido, documento, nacimiento, numero] = fields[..] else {
            return Err(BetError::FieldCount(fields.len()));
        };
        for (name, value) in [("nombre", nombre), ("apellido", apellido)] {
            if value.trim().is_empty() {
                return Err(BetError::Empty(name));
            }
            if value.chars().any(char::is_control) {
                return Err(BetError::ControlChar(name));
            }
        }
        if documento.is_empty()
            || documento.len() > MAX_DOCUMENTO
            || !documento.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(BetError::Documento(documento.to_string()));
        }
        if !valid_date(nacimiento) {
            return Err(BetError::Nacimiento(nacimiento.to_string()));
        }
        let numero = parse_numero(numero).ok_or_else(|| BetError::Numero(numero.to_string()))?;
        Ok(Bet {
            nombre: nombre.to_string(),
            apellido: apellido.to_string(),
            documento: documento.to_string(),
            nacimiento: nacimiento.to_string(),
            numero,
        })
    }

    /// Parses raw bytes (which must be UTF-8).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Bet, BetError> {
        let text = std::str::from_utf8(bytes).map_err(|e| BetError::Utf8(e.valid_up_to()))?;
        Bet::parse(text)
    }

    /// Length of the text form in bytes.
    pub fn encoded_len(&self) -> usize {
        self.nombre.len()
            + self.apellido.len()
            + self.documento.len()
            + self.nacimiento.len()
            + decimal_len(self.numero)
            + 4
    }
}

impl fmt::Display for Bet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{},{},{},{}",
            self.nombre, self.apellido, self.documento, self.nacimiento, self.numero
        )
    }
}

fn decimal_len(n: u16) -> usize {
    match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1000..=9999 => 4,
        _ => 5,
    }
}

fn parse_numero(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `YYYY-MM-DD` naming a real calendar day (leap years included).
pub fn valid_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    let number = |r: std::ops::Range<usize>| -> Option<u32> {
        bytes[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && (1..=days).contains(&day)
}

/// What is wrong with a bet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BetError {
    /// Not valid UTF-8.
    #[error("not valid UTF-8 (after byte {0})")]
    Utf8(usize),
    /// Not five fields.
    #[error(
        "expected 5 comma-separated fields (nombre,apellido,documento,nacimiento,numero), got {0}"
    )]
    FieldCount(usize),
    /// A name is empty.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// A name holds a control character.
    #[error("{0} contains a control character")]
    ControlChar(&'static str),
    /// Documento is not 1..=20 digits.
    #[error("documento {0:?} is not 1 to 20 digits")]
    Documento(String),
    /// Not a real `YYYY-MM-DD` date.
    #[error("nacimiento {0:?} is not a date YYYY-MM-DD")]
    Nacimiento(String),
    /// Numero not in 0..=9999.
    #[error("numero {0:?} is not a number from 0 to 9999")]
    Numero(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_example() {
        let b = Bet::parse("Agustín Emanuel,Zambrano,21689196,2000-05-10,9325").unwrap();
        assert_eq!(b.nombre, "Agustín Emanuel");
        assert_eq!(b.numero, 9325);
        assert_eq!(
            b.to_string(),
            "Agustín Emanuel,Zambrano,21689196,2000-05-10,9325"
        );
        assert_eq!(b.encoded_len(), b.to_string().len());
        assert!(!b.wins());
        assert!(Bet::parse("A,B,1,2000-01-01,7574").unwrap().wins());
    }

    #[test]
    fn leading_zeros_of_documento_survive() {
        assert_eq!(
            Bet::parse("A,B,00012345,2000-01-01,0").unwrap().documento,
            "00012345"
        );
    }

    #[test]
    fn each_field_is_checked_and_named() {
        let cases = [
            ("A,B,1,2000-01-01", BetError::FieldCount(4)),
            ("A,B,1,2000-01-01,5,x", BetError::FieldCount(6)),
            (" ,B,1,2000-01-01,5", BetError::Empty("nombre")),
            ("A,,1,2000-01-01,5", BetError::Empty("apellido")),
            ("A\u{7},B,1,2000-01-01,5", BetError::ControlChar("nombre")),
            ("A,B,12a,2000-01-01,5", BetError::Documento("12a".into())),
            ("A,B,,2000-01-01,5", BetError::Documento(String::new())),
            (
                "A,B,1,2000-02-30,5",
                BetError::Nacimiento("2000-02-30".into()),
            ),
            (
                "A,B,1,2000/01/01,5",
                BetError::Nacimiento("2000/01/01".into()),
            ),
            ("A,B,1,2000-01-01,10000", BetError::Numero("10000".into())),
            ("A,B,1,2000-01-01,-1", BetError::Numero("-1".into())),
            ("A,B,1,2000-01-01,+5", BetError::Numero("+5".into())),
        ];
        for (text, want) in cases {
            assert_eq!(Bet::parse(text).unwrap_err(), want, "{text}");
        }
        assert_eq!(
            Bet::parse_bytes(b"A\xff,B,1,2000-01-01,5").unwrap_err(),
            BetError::Utf8(1)
        );
    }

    #[test]
    fn calendar() {
        assert!(valid_date("2000-02-29"));
        assert!(!valid_date("1900-02-29"));
        assert!(valid_date("2024-12-31"));
        assert!(!valid_date("2024-13-01"));
        assert!(!valid_date("2024-00-10"));
        assert!(!valid_date("0000-01-01"));
        assert!(!valid_date("2024-1-01"));
    }

    proptest::proptest! {
        #[test]
        fn display_then_parse_round_trips(
            nombre in "[A-Za-zÁÉÍÓÚáéíóúñÑ][A-Za-zÁÉÍÓÚáéíóúñÑ ]{0,20}",
            apellido in "[A-Za-zñ]{1,20}",
            documento in "[0-9]{1,20}",
            y in 1900u32..2100, m in 1u32..=12, d in 1u32..=28,
            numero in 0u16..=9999,
        ) {
            let bet = Bet { nombre, apellido, documento, nacimiento: format!("{y:04}-{m:02}-{d:02}"), numero };
            let text = bet.to_string();
            proptest::prop_assert_eq!(text.len(), bet.encoded_len());
            proptest::prop_assert_eq!(Bet::parse(&text).unwrap(), bet);
        }
    }
}
