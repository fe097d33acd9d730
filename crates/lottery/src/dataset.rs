//! Reading agencies' bets (spec: lottery.md, "Data sets"): CSV files with no
//! header, columns `nombre,apellido,documento,nacimiento,numero`, UTF-8, CRLF or
//! LF line ends; plain files, a directory of `agency-N.csv`, or straight out of a
//! zip such as the course's `dataset.zip`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::Error;
use crate::bet::Bet;

fn dataset_error(path: &Path, why: impl Into<String>) -> Error {
    Error::Dataset {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// Parses CSV text (CRLF or LF; blank lines skipped); an error names the line.
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<Bet>, String> {
    let mut bets = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        bets.push(Bet::parse_bytes(line).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    Ok(bets)
}

/// The agency number in a file name `agency-N.csv`.
pub fn agency_of(name: &str) -> Option<u8> {
    let base = name.rsplit('/').next()?;
    base.strip_prefix("agency-")?
        .strip_suffix(".csv")?
        .parse()
        .ok()
}

/// Every `agency-N.csv` of a zip file or a directory, by agency.
pub fn load_all(source: &Path) -> Result<BTreeMap<u8, Vec<Bet>>, Error> {
    let mut out = BTreeMap::new();
    if source.is_dir() {
        for entry in std::fs::read_dir(source)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(agency) = agency_of(&name) {
                let bytes = std::fs::read(entry.path())?;
                out.insert(
                    agency,
                    parse_csv(&bytes).map_err(|e| dataset_error(&entry.path(), e))?,
                );
            }
        }
    } else if is_zip(source) {
        let file = std::fs::File::open(source)?;
        let mut zip =
            zip::ZipArchive::new(file).map_err(|e| dataset_error(source, e.to_string()))?;
        for i in 0..zip.len() {
            let mut f = zip
                .by_index(i)
                .map_err(|e| dataset_error(source, e.to_string()))?;
            let name = f.name().to_string();
            if let Some(agency) = agency_of(&name) {
                let mut bytes =
                    Vec::with_capacity(usize::try_from(f.size()).unwrap_or(0).min(1 << 30));
                f.read_to_end(&mut bytes)?;
                out.insert(
                    agency,
                    parse_csv(&bytes).map_err(|e| dataset_error(source, format!("{name}: {e}")))?,
                );
            }
        }
    } else {
        return Err(dataset_error(
            source,
            "expected a directory or a .zip of agency-N.csv files",
        ));
    }
    if out.is_empty() {
        return Err(dataset_error(source, "no agency-N.csv files in it"));
    }
    Ok(out)
}

/// One agency's bets from a CSV file, or from `agency-N.csv` inside a zip or a
/// directory.
pub fn load_agency(source: &Path, agency: u8) -> Result<Vec<Bet>, Error> {
    if source.is_dir() || is_zip(source) {
        return load_all(source)?
            .remove(&agency)
            .ok_or_else(|| dataset_error(source, format!("no agency-{agency}.csv in it")));
    }
    let bytes = std::fs::read(source).map_err(|e| dataset_error(source, e.to_string()))?;
    parse_csv(&bytes).map_err(|e| dataset_error(source, e))
}

fn is_zip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn crlf_and_lf_and_blank_lines() {
        let crlf =
            parse_csv(b"Ana,P\xc3\xa9rez,01,1990-01-01,1\r\nLuis,Gomez,2,1991-02-02,7574\r\n")
                .unwrap();
        let lf = parse_csv(b"Ana,P\xc3\xa9rez,01,1990-01-01,1\nLuis,Gomez,2,1991-02-02,7574\n\n")
            .unwrap();
        assert_eq!(crlf, lf);
        assert_eq!(crlf.len(), 2);
        assert_eq!(crlf[0].apellido, "Pérez");
        assert_eq!(
            parse_csv(b"A,B,1,2000-01-01,1\r\nbroken\r\n").unwrap_err(),
            "line 2: expected 5 comma-separated fields (nombre,apellido,documento,nacimiento,numero), got 1"
        );
    }

    #[test]
    fn agency_names() {
        assert_eq!(agency_of("agency-3.csv"), Some(3));
        assert_eq!(agency_of("data/agency-12.csv"), Some(12));
        assert_eq!(agency_of("agency-x.csv"), None);
        assert_eq!(agency_of("bets.csv"), None);
    }

    #[test]
    fn reads_zip_directory_and_single_file() {
        let dir = tempfile::tempdir().unwrap();
        let zpath = dir.path().join("d.zip");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zpath).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("agency-1.csv", opts).unwrap();
        z.write_all(b"A,B,1,2000-01-01,1\r\n").unwrap();
        z.start_file("agency-2.csv", opts).unwrap();
        z.write_all(b"C,D,2,2000-01-01,7574\nE,F,3,2000-01-01,3\n")
            .unwrap();
        z.start_file("README", opts).unwrap();
        z.write_all(b"ignored").unwrap();
        z.finish().unwrap();
        let all = load_all(&zpath).unwrap();
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(all[&2].len(), 2);
        assert_eq!(load_agency(&zpath, 2).unwrap(), all[&2]);
        assert!(load_agency(&zpath, 9).is_err());

        let d = dir.path().join("csvs");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("agency-7.csv"), b"A,B,1,2000-01-01,1\n").unwrap();
        assert_eq!(load_all(&d).unwrap()[&7].len(), 1);
        assert_eq!(load_agency(&d.join("agency-7.csv"), 7).unwrap().len(), 1);
    }

    /// The course's real data set, when `PROTOLAB_DATASET` points at it.
    #[test]
    fn real_dataset_counts_when_available() {
        let Some(path) = std::env::var_os("PROTOLAB_DATASET") else {
            return;
        };
        let all = load_all(Path::new(&path)).unwrap();
        let counts: Vec<usize> = all.values().map(Vec::len).collect();
        assert_eq!(counts, vec![26_936, 25_518, 16_014, 9_238, 991]);
        let winners: Vec<usize> = all
            .values()
            .map(|b| b.iter().filter(|b| b.wins()).count())
            .collect();
        assert_eq!(winners, vec![2, 3, 3, 2, 0]);
    }
}
