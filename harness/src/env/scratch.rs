//! Where throw-away data goes: the process runtime's run directories (each
//! Postgres's data directory, its socket, Redis's directory) and
//! [`super::LocalPostgres`]'s directories.
//!
//! Every start copies a cached cluster of about 40 to 50 MB in some 1,300
//! files, and a test run starts hundreds. On a disk those copies queue
//! behind the writeback of the ones before: here (ext4 on a virtual disk)
//! one copy took 40 ms on a quiet disk and 330 to 570 ms after a few
//! starts, against a steady 70 ms in memory. So the data goes to memory
//! when the machine has room for it:
//!
//! 1. `TEKUP_SCRATCH_DIR`, when set (created if missing);
//! 2. else `/dev/shm`, when it is a tmpfs the harness can write to with at
//!    least [`MIN_FREE`] free (a container's default `/dev/shm` is 64 MB:
//!    too small, so it is passed over);
//! 3. else the temporary directory (`TMPDIR`).
//!
//! The data is thrown away with its run. A run killed before it could tear
//! down leaves its directory behind; the next process runtime's start in
//! the same place removes it ([`super::process`]).

use std::path::{Path, PathBuf};

/// The least free space `/dev/shm` must have to be used.
pub const MIN_FREE: u64 = 2 << 30;

/// The directory throw-away data goes to, by the rules above.
pub fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TEKUP_SCRATCH_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        // A failure shows where the directory is first used, with its path.
        let _ = std::fs::create_dir_all(&dir);
        return dir;
    }
    let shm = Path::new("/dev/shm");
    if memory_with_room(shm, MIN_FREE) {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

/// Whether `dir` is a tmpfs this process can write to, with `room` bytes free.
#[expect(unsafe_code, reason = "statfs(2) and access(2) have no wrapper in std")]
fn memory_with_room(dir: &Path, room: u64) -> bool {
    let Some(c_path) = dir.to_str().and_then(|p| std::ffi::CString::new(p).ok()) else {
        return false;
    };
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` is a
    // plain struct the call fills in; both outlive the calls.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return false;
    }
    let is_tmpfs = stat.f_type == libc::TMPFS_MAGIC;
    let free = stat
        .f_bavail
        .saturating_mul(u64::try_from(stat.f_bsize).unwrap_or(0));
    // SAFETY: as above; `access` only reads the path.
    let writable = unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
    is_tmpfs && writable && free >= room
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_directory_is_not_memory() {
        // The crate's own directory is on the build's disk, never a tmpfs
        // in the setups the tests run in.
        assert!(!memory_with_room(Path::new(env!("CARGO_MANIFEST_DIR")), 0));
    }

    #[test]
    fn memory_without_the_room_asked_is_passed_over() {
        let shm = Path::new("/dev/shm");
        if !memory_with_room(shm, 0) {
            return; // no writable tmpfs here: nothing to check
        }
        assert!(!memory_with_room(shm, u64::MAX));
    }

    #[test]
    fn a_path_that_does_not_exist_is_not_memory() {
        assert!(!memory_with_room(
            Path::new("/nonexistent/tekup-scratch"),
            0
        ));
    }
}
