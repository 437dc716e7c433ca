//! One process per store directory. Two processes numbering the same
//! inboxes would overwrite each other's entries (and forget each other's
//! retries), so the `disk` store holds an exclusive lock on a file in its
//! directory for as long as it is open, with its process id written in it
//! for whoever is refused.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::InboxError;

/// The file locked, in the store's directory.
const LOCK_FILE: &str = "jim.lock";

/// How long a store of this same process may take to let go of the
/// directory (its committer finishing after it was dropped) before a new
/// one is refused.
const OWN_RELEASE: Duration = Duration::from_secs(5);

/// The lock, held until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` (made if missing) for this process.
    ///
    /// # Errors
    /// [`InboxError::Locked`] when another process holds it, naming the
    /// directory and that process; [`InboxError::Open`] when the file
    /// cannot be made.
    pub(crate) fn take(dir: &Path) -> Result<DirLock, InboxError> {
        let open_err = |e: std::io::Error| InboxError::Open {
            reason: format!("{}: {e}", dir.display()),
        };
        std::fs::create_dir_all(dir).map_err(open_err)?;
        let path = dir.join(LOCK_FILE);
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(open_err)?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let holder = holder(&mut file);
                    if holder == Some(std::process::id()) && started.elapsed() < OWN_RELEASE {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    return Err(InboxError::Locked {
                        dir: dir_name(dir),
                        holder,
                    });
                }
                Err(TryLockError::Error(e)) => return Err(open_err(e)),
            }
        }
        file.set_len(0).map_err(open_err)?;
        file.rewind().map_err(open_err)?;
        writeln!(file, "{}", std::process::id()).map_err(open_err)?;
        file.sync_all().map_err(open_err)?;
        Ok(DirLock { _file: file })
    }
}

/// The process id the holder wrote, if it did.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn dir_name(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_waits_for_the_first_of_its_own_process_then_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::take(dir.path()).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(first);
        });
        DirLock::take(dir.path()).unwrap();
        release.join().unwrap();
        let pid = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
    }
}
