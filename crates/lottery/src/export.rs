//! Export of the stored bets in the course's `bets.csv` layout (spec:
//! lottery.md, "Storage"): `agency,first_name,last_name,document,birthdate,number`
//! per row, no header, CRLF line ends, minimal quoting (a field is quoted only if
//! it holds a comma, a quote or a line break; quotes are doubled), as Python's
//! `csv.writer` writes it.

use std::io::Write;
use std::path::Path;

use crate::Error;
use crate::store::read_all;

/// One field, quoted only if needed.
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Writes every stored bet of the database at `db` to `out`; returns the count.
pub fn export_csv(db: &Path, out: &mut impl Write) -> Result<usize, Error> {
    let rows = read_all(db)?;
    for (agency, b) in &rows {
        write!(
            out,
            "{agency},{},{},{},{},{}\r\n",
            csv_field(&b.nombre),
            csv_field(&b.apellido),
            csv_field(&b.documento),
            csv_field(&b.nacimiento),
            b.numero
        )?;
    }
    out.flush()?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_quoting() {
        assert_eq!(csv_field("Ana"), "Ana");
        assert_eq!(csv_field("O\"Neil"), "\"O\"\"Neil\"");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("Núñez"), "Núñez");
    }
}
