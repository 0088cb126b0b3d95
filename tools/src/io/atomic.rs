//! Replacing output files atomically, so that an interrupted or failed write never leaves a
//! half-written file where a user expects a complete one.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::{IoError, IoErrorKind};

/// Writes `bytes` to `path`, replacing any existing file atomically.
///
/// See [`write_atomic_with`] for the procedure and its guarantees.
///
/// # Errors
/// [`IoErrorKind::Write`] when the temporary file cannot be created, written, synced or
/// renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// Streams the output of `f` to `path`, replacing any existing file atomically.
///
/// The data goes to a temporary file in the same directory as `path` (`.` for a bare file
/// name), which is flushed, synced to disk, given the
/// permissions of the file it replaces (or the usual `0666 & !umask` for a new file), and
/// then renamed over `path`. If anything fails, including `f` itself, the temporary file is
/// removed and `path` is left as it was: absent, or holding its previous content. A
/// symbolic link at `path` is replaced by the new file, not written through.
///
/// # Errors
/// [`IoErrorKind::Write`] carrying the first I/O error, whether it came from `f` or from
/// creating, syncing or renaming the file.
pub fn write_atomic_with(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), IoError> {
    let err = |e: io::Error| IoError::new(path, IoErrorKind::Write(e));
    let dir = temp_dir_for(path);

    let mut builder = tempfile::Builder::new();
    builder.prefix(".edgernn-tmp-");
    // tempfile's default mode is 0600, which would make outputs unreadable to the group
    // once renamed; asking for 0666 lets the umask decide, as for any newly created file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    // From here on, dropping `tmp` (on any early return) deletes the temporary file.
    let mut tmp = builder.tempfile_in(dir).map_err(err)?;

    {
        let mut buffered = BufWriter::new(tmp.as_file_mut());
        f(&mut buffered).map_err(err)?;
        buffered.flush().map_err(err)?;
    }
    if let Ok(existing) = fs::metadata(path) {
        if existing.is_file() {
            tmp.as_file()
                .set_permissions(existing.permissions())
                .map_err(err)?;
        }
    }
    tmp.as_file().sync_all().map_err(err)?;
    // A failed persist hands the temporary file back inside the error; dropping it deletes it.
    tmp.persist(path).map_err(|e| err(e.error))?;
    sync_dir(dir);
    Ok(())
}

/// The directory for the temporary file: the target's own, so that the final rename stays
/// within one filesystem.
fn temp_dir_for(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Makes the rename itself durable.
///
/// Best effort: the new file is complete and in place either way, and some platforms and
/// filesystems cannot open or sync a directory, so a failure here is not reported.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Refuses to go on when `output` names the same file as `input`.
///
/// Both paths are resolved (symbolic links, `.` and `..`) when they exist; on Unix, hard
/// links to one file are also caught by comparing device and inode. When either path does
/// not exist yet, writing the output cannot destroy the input, so this succeeds.
///
/// # Errors
/// [`IoErrorKind::OutputIsInput`] (reported against `output`) when both name one file.
pub fn ensure_not_same_file(input: &Path, output: &Path) -> Result<(), IoError> {
    if same_file(input, output) {
        Err(IoError::new(
            output,
            IoErrorKind::OutputIsInput {
                input: input.to_path_buf(),
            },
        ))
    } else {
        Ok(())
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(meta_a), Ok(meta_b)) = (fs::metadata(a), fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta_a.dev() == meta_b.dev() && meta_a.ino() == meta_b.ino() {
            return true;
        }
    }
    #[cfg(not(unix))]
    let _ = (meta_a, meta_b);
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(ca), Ok(cb)) => ca == cb,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_and_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_atomic(&path, b"first version").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first version");
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(entries(dir.path()), ["out.bin"]);
    }

    #[test]
    fn missing_directory_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("out.bin");
        let err = write_atomic(&path, b"data").unwrap_err();
        assert!(matches!(err.kind, IoErrorKind::Write(_)));
        assert_eq!(err.path, path);
        assert!(!path.exists());
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn failing_writer_keeps_old_content_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        fs::write(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |out| {
            out.write_all(b"partial")?;
            Err(io::Error::other("generator failed"))
        })
        .unwrap_err();
        assert!(matches!(err.kind, IoErrorKind::Write(_)));
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["out.csv"]);
    }

    #[test]
    fn failed_rename_over_directory_removes_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("occupied");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), b"x").unwrap();
        assert!(write_atomic(&path, b"data").is_err());
        assert!(path.join("keep").exists());
        assert_eq!(entries(dir.path()), ["occupied"]);
    }

    #[test]
    fn streaming_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stream.txt");
        write_atomic_with(&path, |out| {
            for i in 0..3 {
                writeln!(out, "line {i}")?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "line 0\nline 1\nline 2\n"
        );
    }

    #[cfg(unix)]
    #[test]
    fn keeps_permissions_of_replaced_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"new").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[cfg(unix)]
    #[test]
    fn new_files_get_the_same_mode_as_plainly_created_ones() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.bin");
        write_atomic(&path, b"x").unwrap();
        let plain = dir.path().join("plain.bin");
        fs::File::create(&plain).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), mode(&plain));
    }

    #[test]
    fn temp_dir_is_the_parent_or_current_dir() {
        assert_eq!(temp_dir_for(Path::new("x.npy")), Path::new("."));
        assert_eq!(temp_dir_for(Path::new("a/b/x.npy")), Path::new("a/b"));
        assert_eq!(temp_dir_for(Path::new("/x.npy")), Path::new("/"));
    }

    #[test]
    fn same_file_detected_through_dot_and_dotdot() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let input = dir.path().join("x.npy");
        fs::write(&input, b"data").unwrap();
        let via_dot = dir.path().join(".").join("x.npy");
        let via_dotdot = dir.path().join("sub").join("..").join("x.npy");
        for output in [&input, &via_dot, &via_dotdot] {
            let err = ensure_not_same_file(&input, output).unwrap_err();
            assert!(matches!(err.kind, IoErrorKind::OutputIsInput { .. }));
            assert_eq!(&err.path, output);
        }
        assert!(err_text(&input, &via_dot).contains("refusing to overwrite the input file"));
    }

    fn err_text(input: &Path, output: &Path) -> String {
        ensure_not_same_file(input, output).unwrap_err().to_string()
    }

    #[cfg(unix)]
    #[test]
    fn same_file_detected_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("x.npy");
        fs::write(&input, b"data").unwrap();
        let symlink = dir.path().join("sym.npy");
        std::os::unix::fs::symlink(&input, &symlink).unwrap();
        let hardlink = dir.path().join("hard.npy");
        fs::hard_link(&input, &hardlink).unwrap();
        assert!(ensure_not_same_file(&input, &symlink).is_err());
        assert!(ensure_not_same_file(&input, &hardlink).is_err());
    }

    #[test]
    fn different_or_missing_files_are_fine() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.npy");
        let other = dir.path().join("other.npy");
        fs::write(&input, b"a").unwrap();
        fs::write(&other, b"a").unwrap();
        assert!(ensure_not_same_file(&input, &other).is_ok());
        assert!(ensure_not_same_file(&input, &dir.path().join("new.npy")).is_ok());
        assert!(ensure_not_same_file(&dir.path().join("missing.npy"), &input).is_ok());
    }
}
