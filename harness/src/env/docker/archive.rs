//! Tar archives uploaded into containers before they start: programs,
//! `${file:...}` files, and files the harness makes in memory (a
//! Prometheus's configuration).

use std::path::{Path, PathBuf};

/// An archive of `program` (into `/tekup/bin`) and `files` (host path,
/// path in the container).
pub(super) fn build_archive(
    program: Option<&Path>,
    files: &[(PathBuf, String)],
) -> std::io::Result<Vec<u8>> {
    archive(program, files)?.into_inner()
}

/// Files made in memory, as `(absolute path in the container, contents)`:
/// readable by every user (the official Prometheus image runs as
/// `nobody`), and so is the directory holding each (the directories above
/// it are the image's, left as they are).
pub(super) fn append_made(
    tar: &mut tar::Builder<Vec<u8>>,
    made: &[(PathBuf, Vec<u8>)],
) -> std::io::Result<()> {
    let mut dirs = std::collections::BTreeSet::new();
    for (path, contents) in made {
        let inner = path.strip_prefix("/").unwrap_or(path);
        if let Some(dir) = inner.parent() {
            if !dir.as_os_str().is_empty() && dirs.insert(dir.to_path_buf()) {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, dir, std::io::empty())?;
            }
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(contents.len() as u64);
        tar.append_data(&mut header, inner, contents.as_slice())?;
    }
    Ok(())
}

/// [`build_archive`], left open for more entries.
pub(super) fn archive(
    program: Option<&Path>,
    files: &[(PathBuf, String)],
) -> std::io::Result<tar::Builder<Vec<u8>>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(true);
    // Docker 20.10 rejects GNU sparse entries (type `S`), which debug binaries produce.
    tar.sparse(false);
    if let Some(program) = program {
        let name = program.file_name().unwrap_or_default();
        tar.append_path_with_name(program, Path::new("tekup/bin").join(name))?;
    }
    for (host, seen) in files {
        let inner = seen.trim_start_matches('/');
        if host.is_dir() {
            tar.append_dir_all(inner, host)?;
        } else {
            tar.append_path_with_name(host, inner)?;
        }
    }
    Ok(tar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_made_in_memory_are_readable_by_every_user() {
        let mut tar = tar::Builder::new(Vec::new());
        append_made(
            &mut tar,
            &[
                (
                    PathBuf::from("/etc/tekup-prometheus/rules-0-a.yml"),
                    b"r".to_vec(),
                ),
                (
                    PathBuf::from("/etc/tekup-prometheus/prometheus.yml"),
                    b"c".to_vec(),
                ),
            ],
        )
        .expect("packed");
        let bytes = tar.into_inner().expect("tar");
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entries: Vec<(String, u32, bool)> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let header = e.header();
                (
                    e.path().expect("path").display().to_string(),
                    header.mode().expect("mode"),
                    header.entry_type().is_dir(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("etc/tekup-prometheus".to_owned(), 0o755, true),
                (
                    "etc/tekup-prometheus/rules-0-a.yml".to_owned(),
                    0o644,
                    false
                ),
                (
                    "etc/tekup-prometheus/prometheus.yml".to_owned(),
                    0o644,
                    false
                ),
            ]
        );
    }
}
