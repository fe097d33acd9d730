//! A deterministic generator of realistic bets (spec: lottery.md, "Data sets"):
//! Spanish names with accents, 8-digit documentos (leading zeros included),
//! real birth dates, numbers 0..=9999 and a chosen share of winners. The same
//! seed always gives the same data set, so demos, tests and benchmarks run on a
//! fresh clone without the course's file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Error;
use crate::bet::{Bet, WINNING_NUMBER};

const FIRST: &[&str] = &[
    "Agustín",
    "Sofía",
    "Matías",
    "Valentina",
    "Martín",
    "Camila",
    "Tomás",
    "Lucía",
    "Joaquín",
    "Martina",
    "Nicolás",
    "Florencia",
    "Benjamín",
    "Julián",
    "Ramón",
    "Inés",
    "Sebastián",
    "Belén",
    "Andrés",
    "Mía",
    "Germán",
    "Rocío",
    "Iván",
    "Luciana",
    "Nahuel",
    "Milagros",
    "Facundo",
    "Agustina",
    "Joaquina",
    "Emilia",
];
const SECOND: &[&str] = &[
    "",
    "",
    "",
    " Emanuel",
    " José",
    " María",
    " Belén",
    " Nicolás",
    " Ángel",
    " Inés",
];
const LAST: &[&str] = &[
    "González",
    "Rodríguez",
    "Gómez",
    "Fernández",
    "López",
    "Díaz",
    "Martínez",
    "Pérez",
    "García",
    "Sánchez",
    "Romero",
    "Sosa",
    "Álvarez",
    "Torres",
    "Ruiz",
    "Ramírez",
    "Flores",
    "Benítez",
    "Acosta",
    "Medina",
    "Herrera",
    "Suárez",
    "Aguirre",
    "Giménez",
    "Gutiérrez",
    "Peña",
    "Zambrano",
    "Núñez",
    "Ibáñez",
    "Muñoz",
];

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// Agencies, numbered 1..=agencies.
    pub agencies: u8,
    /// Bets in all, split evenly (the first agencies get the remainder).
    pub bets: usize,
    /// Share of bets on the winning number, 0..=1.
    pub winner_share: f64,
    /// Seed.
    pub seed: u64,
}

/// Generates the data set: bets per agency.
pub fn generate(cfg: &GenConfig) -> BTreeMap<u8, Vec<Bet>> {
    let agencies = usize::from(cfg.agencies.max(1));
    let mut out = BTreeMap::new();
    for a in 0..agencies {
        let n = cfg.bets / agencies + usize::from(a < cfg.bets % agencies);
        let agency = (a + 1) as u8;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ (u64::from(agency) << 32));
        out.insert(
            agency,
            (0..n)
                .map(|_| random_bet(&mut rng, cfg.winner_share))
                .collect(),
        );
    }
    out
}

fn random_bet(rng: &mut ChaCha8Rng, winner_share: f64) -> Bet {
    let pick = |rng: &mut ChaCha8Rng, list: &[&'static str]| list[rng.random_range(0..list.len())];
    let nombre = format!("{}{}", pick(rng, FIRST), pick(rng, SECOND));
    let apellido = pick(rng, LAST).to_string();
    let documento = format!("{:08}", rng.random_range(0..100_000_000u32));
    let year = rng.random_range(1940..=2005u32);
    let month = rng.random_range(1..=12u32);
    let day = rng.random_range(1..=28u32);
    let numero = if rng.random_bool(winner_share.clamp(0.0, 1.0)) {
        WINNING_NUMBER
    } else {
        // Any number but the winning one.
        let n = rng.random_range(0..9999u16);
        if n >= WINNING_NUMBER { n + 1 } else { n }
    };
    Bet {
        nombre,
        apellido,
        documento,
        nacimiento: format!("{year:04}-{month:02}-{day:02}"),
        numero,
    }
}

/// CSV text of bets, CRLF line ends, as the course's files.
pub fn to_csv(bets: &[Bet]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bets.len() * 56);
    for b in bets {
        let _ = write!(out, "{b}\r\n");
    }
    out
}

/// Writes `agency-N.csv` files into `dir` (created if missing).
pub fn write_dir(data: &BTreeMap<u8, Vec<Bet>>, dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)?;
    for (agency, bets) in data {
        std::fs::write(dir.join(format!("agency-{agency}.csv")), to_csv(bets))?;
    }
    Ok(())
}

/// Writes a zip of `agency-N.csv` files, like the course's `dataset.zip`.
pub fn write_zip(data: &BTreeMap<u8, Vec<Bet>>, path: &Path) -> Result<(), Error> {
    let zip_err = |e: zip::result::ZipError| Error::Dataset {
        path: path.display().to_string(),
        why: e.to_string(),
    };
    let mut z = zip::ZipWriter::new(std::fs::File::create(path)?);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (agency, bets) in data {
        z.start_file(format!("agency-{agency}.csv"), opts)
            .map_err(zip_err)?;
        z.write_all(&to_csv(bets))?;
    }
    z.finish().map_err(zip_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{load_all, parse_csv};

    fn cfg(seed: u64) -> GenConfig {
        GenConfig {
            agencies: 3,
            bets: 10_001,
            winner_share: 0.01,
            seed,
        }
    }

    #[test]
    fn deterministic_and_valid() {
        let a = generate(&cfg(1));
        assert_eq!(a, generate(&cfg(1)));
        assert_ne!(a, generate(&cfg(2)));
        assert_eq!(
            a.values().map(Vec::len).collect::<Vec<_>>(),
            vec![3334, 3334, 3333]
        );
        for bets in a.values() {
            // Every generated bet survives the round trip through the CSV parser.
            assert_eq!(&parse_csv(&to_csv(bets)).unwrap(), bets);
            assert!(bets.iter().all(|b| b.documento.len() == 8));
        }
        let all: Vec<&Bet> = a.values().flatten().collect();
        assert!(
            all.iter()
                .any(|b| b.nombre.contains(|c: char| !c.is_ascii())),
            "accents"
        );
        assert!(
            all.iter().any(|b| b.documento.starts_with('0')),
            "leading zeros"
        );
        let winners = all.iter().filter(|b| b.wins()).count();
        assert!((50..=150).contains(&winners), "1% of 10,001: {winners}");
    }

    #[test]
    fn zip_and_dir_read_back() {
        let data = generate(&cfg(3));
        let dir = tempfile::tempdir().unwrap();
        write_zip(&data, &dir.path().join("d.zip")).unwrap();
        assert_eq!(load_all(&dir.path().join("d.zip")).unwrap(), data);
        write_dir(&data, &dir.path().join("csv")).unwrap();
        assert_eq!(load_all(&dir.path().join("csv")).unwrap(), data);
    }
}
