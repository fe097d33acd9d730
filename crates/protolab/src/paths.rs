//! Paths a server or client is given, checked before it binds or waits, so a
//! typo is one clear line at start rather than an empty listing or an error
//! after the first transfer (issue #19).

use std::path::Path;

use anyhow::bail;

/// A directory to serve files from: it exists, is a directory, and we can
/// list it.
pub fn served_dir(path: &Path) -> anyhow::Result<()> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("cannot serve {shown}: no such directory")
        }
        Err(e) => bail!("cannot serve {shown}: {e}"),
        Ok(m) if !m.is_dir() => bail!("cannot serve {shown}: it is a file, not a directory"),
        Ok(_) => {}
    }
    if let Err(e) = std::fs::read_dir(path) {
        bail!("cannot serve {shown}: cannot list it ({e})");
    }
    Ok(())
}

/// A file to create or open for writing: not a directory, and its directory
/// exists.
pub fn file_to_write(path: &Path, what: &str) -> anyhow::Result<()> {
    let shown = path.display();
    if path.is_dir() {
        bail!("{what} {shown} is a directory, not a file");
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!(
            "{what} {shown}: the directory {} does not exist",
            parent.display()
        );
    }
    Ok(())
}

/// A directory to keep files in, made if missing (with its parents); refused
/// if a file is in the way or it cannot be made.
pub fn dir_to_keep(path: &Path, what: &str) -> anyhow::Result<()> {
    let shown = path.display();
    if path.exists() && !path.is_dir() {
        bail!("{what} {shown} is a file, not a directory");
    }
    if let Err(e) = std::fs::create_dir_all(path) {
        bail!("{what} {shown} cannot be made: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_names_the_path_and_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let missing = dir.path().join("nope");

        served_dir(dir.path()).unwrap();
        let e = served_dir(&missing).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("no such directory"), "{e}");
        let e = served_dir(&file).unwrap_err().to_string();
        assert!(e.contains("a file, not a directory"), "{e}");

        file_to_write(&dir.path().join("new.db"), "database").unwrap();
        file_to_write(Path::new("relative.db"), "database").unwrap();
        let e = file_to_write(&missing.join("x.db"), "database")
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist") && e.contains("nope"), "{e}");
        let e = file_to_write(dir.path(), "output").unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");

        dir_to_keep(&missing.join("deeper"), "log directory").unwrap();
        assert!(missing.join("deeper").is_dir());
        let e = dir_to_keep(&file, "log directory").unwrap_err().to_string();
        assert!(e.contains("a file, not a directory"), "{e}");
    }
}
