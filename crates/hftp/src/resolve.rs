//! Which file a name means, and never one outside the served directory (spec:
//! hftp.md, check 5; hostile input: a symbolic link inside the directory to
//! `/etc/passwd` must not be listed nor served).
//!
//! Names are single components (check 2 forbids `/`, `.` and `..`), so
//! `dir/name` can leave the directory only through a symbolic link. A name is
//! looked up with `lstat`: a plain regular file costs exactly what `stat` did.
//! Only a link is resolved (every component, with `realpath`) and served when
//! its target is a regular file inside the directory as resolved now. A link
//! that dangles, loops or leads outside is, for the client, no such file
//! (`202`). The served directory's own path may be a link (`testdata ->
//! /srv/files`): containment is judged against where it resolves.
//!
//! The operator owns the directory's contents: a link swapped between the
//! check and the `open` is not defended against (that would take `openat2`
//! with `RESOLVE_BENEATH`), and neither is a hard link, which is the file itself.

use std::io;
use std::path::{Path, PathBuf};

/// What a name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A regular file of this size; `path` is where to open it.
    File {
        /// Bytes in the file.
        size: u64,
    },
    /// Nothing a client may have: missing, not a regular file, or a link that
    /// dangles, loops or leads outside the directory.
    Nothing,
}

/// Looks `path` (= `dir/name`) up. On success `path` is left naming the file to
/// open: itself, or a link's target inside `dir`. An error is a failure to read
/// what exists (permissions, I/O), not absence.
pub fn lookup(dir: &Path, path: &mut PathBuf) -> io::Result<Found> {
    let meta = match std::fs::symlink_metadata(&*path) {
        Ok(m) => m,
        Err(e) if absent(&e) => return Ok(Found::Nothing),
        Err(e) => return Err(e),
    };
    if meta.is_file() {
        return Ok(Found::File { size: meta.len() });
    }
    if !meta.file_type().is_symlink() {
        return Ok(Found::Nothing);
    }
    match inside_target(dir, path) {
        Some((target, size)) => {
            *path = target;
            Ok(Found::File { size })
        }
        None => Ok(Found::Nothing),
    }
}

/// A link's target and size, if it resolves to a regular file inside `dir`.
pub fn inside_target(dir: &Path, link: &Path) -> Option<(PathBuf, u64)> {
    let root = std::fs::canonicalize(dir).ok()?;
    let target = std::fs::canonicalize(link).ok()?;
    if !target.starts_with(&root) {
        return None;
    }
    let meta = std::fs::metadata(&target).ok()?;
    meta.is_file().then_some((target, meta.len()))
}

/// Errors that mean "no such file" for a name that passed check 2.
fn absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::InvalidFilename | io::ErrorKind::NotADirectory
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn look(dir: &Path, name: &str) -> (Found, PathBuf) {
        let mut p = dir.join(name);
        let f = lookup(dir, &mut p).unwrap();
        (f, p)
    }

    #[test]
    fn links_are_followed_only_inside_the_directory() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"top secret").unwrap();
        let served = tempfile::tempdir().unwrap();
        let d = served.path();
        std::fs::write(d.join("real"), b"12345").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub").join("deep"), b"abc").unwrap();
        symlink(outside.path().join("secret"), d.join("out-file")).unwrap();
        symlink(outside.path(), d.join("out-dir")).unwrap();
        symlink("/etc/passwd", d.join("passwd")).unwrap();
        symlink("real", d.join("in-file")).unwrap();
        symlink(d.join("sub").join("deep"), d.join("in-deep")).unwrap();
        symlink("sub", d.join("in-dir")).unwrap();
        symlink("loop-b", d.join("loop-a")).unwrap();
        symlink("loop-a", d.join("loop-b")).unwrap();
        symlink("nowhere", d.join("dangling")).unwrap();

        assert_eq!(look(d, "real"), (Found::File { size: 5 }, d.join("real")));
        for name in [
            "out-file", "out-dir", "passwd", "in-dir", "loop-a", "dangling", "sub", "missing",
        ] {
            assert_eq!(look(d, name).0, Found::Nothing, "{name}");
        }
        let (found, path) = look(d, "in-file");
        assert_eq!(found, Found::File { size: 5 });
        assert_eq!(std::fs::read(path).unwrap(), b"12345");
        assert_eq!(look(d, "in-deep").0, Found::File { size: 3 });
    }

    #[test]
    fn a_served_directory_reached_through_a_link_still_serves_its_links() {
        let real = tempfile::tempdir().unwrap();
        std::fs::write(real.path().join("f"), b"xy").unwrap();
        symlink("f", real.path().join("g")).unwrap();
        let holder = tempfile::tempdir().unwrap();
        let alias = holder.path().join("alias");
        symlink(real.path(), &alias).unwrap();
        assert_eq!(look(&alias, "g").0, Found::File { size: 2 });
        assert_eq!(look(&alias, "f").0, Found::File { size: 2 });
    }
}
