//! Which processes write one SQLite file now.
//!
//! Several processes may write one file: `spanlens serve` and, beside it, `spanlens reprice`,
//! `evaluate` or `keys`. Each store holds a shared `flock` on `<file>-writers` for as long as
//! it is open. A store opening the file first asks for the lock alone: when it gets it, no
//! other writer is alive, and what a stopped one left half done (its full-text backlog) is its
//! to finish; when it does not, a live writer still holds those entries in its memory and will
//! index them itself. The lock is held alone only while that is finished, so two stores never
//! finish it together. A process that dies loses its lock with it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// This store's place among the file's writers; dropping it leaves.
#[derive(Debug)]
pub struct Writers {
    file: File,
}

/// The lock file of the database at `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-writers");
    PathBuf::from(name)
}

impl Writers {
    /// Joins the writers of the database at `db`: `Some` when it is the only one (it holds the
    /// lock alone until [`Writers::share`]), `None` when another process writes the file now
    /// (it then holds the lock shared).
    pub fn join(db: &Path) -> std::io::Result<(Writers, bool)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path(db))?;
        let w = Writers { file };
        let alone = w.try_alone()?;
        if !alone {
            w.share()?;
        }
        Ok((w, alone))
    }

    #[cfg(unix)]
    fn flock(&self, op: libc::c_int) -> std::io::Result<bool> {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: the descriptor is this open file's, alive for the call.
            if unsafe { libc::flock(self.file.as_raw_fd(), op) } == 0 {
                return Ok(true);
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => return Ok(false),
                _ => return Err(e),
            }
        }
    }

    /// Takes the lock alone if no other store holds it.
    #[cfg(unix)]
    fn try_alone(&self) -> std::io::Result<bool> {
        self.flock(libc::LOCK_EX | libc::LOCK_NB)
    }

    /// Holds the lock shared (waiting for a store that holds it alone to finish).
    #[cfg(unix)]
    pub fn share(&self) -> std::io::Result<()> {
        self.flock(libc::LOCK_SH).map(|_| ())
    }

    /// Elsewhere no lock is taken: every store counts as alone, as one process per file.
    #[cfg(not(unix))]
    fn try_alone(&self) -> std::io::Result<bool> {
        Ok(true)
    }

    #[cfg(not(unix))]
    pub fn share(&self) -> std::io::Result<()> {
        Ok(())
    }
}
