//! The process's id in a file while it runs, for scripts and docs that
//! signal this one process (`kill -HUP "$(cat FILE)"`), never every
//! process of the same name.

use std::path::{Path, PathBuf};

/// A file holding this process's id; removed when dropped (at a clean
/// exit).
///
/// ```
/// let path = std::env::temp_dir().join(format!("jim-doc-{}.pid", std::process::id()));
/// let pid_file = jim_service::PidFile::write(&path).unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", std::process::id()));
/// drop(pid_file);
/// assert!(!path.exists());
/// ```
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's id to `path` (replacing what was there).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write(path: &Path) -> std::io::Result<PidFile> {
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(PidFile {
            path: path.to_owned(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only if it is still ours: a successor may have written its own.
        if std::fs::read_to_string(&self.path).is_ok_and(|pid| pid.trim() == std::process::id().to_string()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
