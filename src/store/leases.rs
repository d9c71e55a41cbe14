//! Container leases: what keeps an image's layers and snapshots while a container uses them.
//!
//! Every container, `--rm` ones included, has `<root>/containers/<id>/lease`: the image ID,
//! its layer blobs and snapshot chain IDs, and whether the container has a database record.
//! The dir appears with its lease in one rename, under the store lock, after the snapshots
//! were checked to exist; `rmi`, the prunes and the garbage collector read every lease under
//! the same lock. So a snapshot is either leased before it is mounted, or gone before the
//! container looks for it (and unpacked again).
//!
//! The runner keeps an `flock` on the lease while the container runs: a locked lease is a
//! running container. An unlocked lease of a recorded container is a stopped container (kept
//! until `rm`); an unlocked lease without a record is a `--rm` container whose runner was
//! killed, removed by [`Store::clean_leftovers`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::session::try_lock;
use super::{io_err, ImageId, Store, StoreError};
use crate::image::digest::Digest;

const LEASE: &str = "lease";

/// What a container holds on to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lease {
    pub image_id: ImageId,
    /// Layer blobs, bottom to top.
    pub layers: Vec<Digest>,
    /// Snapshot chain IDs, bottom to top.
    pub chains: Vec<Digest>,
    /// Whether the container has a database record (not a plain `--rm` container).
    pub recorded: bool,
    /// The volumes the container mounts (see `volumes`): none can be removed while it exists.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Those of `volumes` made for this container alone (anonymous): removed with the dir
    /// of a `--rm` container whose runner died, as its runner would have.
    #[serde(default)]
    pub own_volumes: Vec<String>,
}

/// A container using an image, as `rmi` and the collectors see it.
#[derive(Debug, Clone)]
pub(crate) struct ContainerUse {
    /// Container ID (64 hex digits).
    pub id: String,
    pub lease: Lease,
    pub running: bool,
}

/// A lease held by the running process: the container is running while this lives.
#[derive(Debug)]
pub struct HeldLease {
    _file: fs::File,
    /// The container dir (`<root>/containers/<id>`).
    pub dir: PathBuf,
}

impl Store {
    /// Creates the container dir of `id` with `lease` (locked, kept so while the returned
    /// value lives) and the empty `subdirs`, once every snapshot and volume of the lease
    /// exists, all under the store lock. `Ok(None)` when a snapshot or volume disappeared
    /// meanwhile (removed by an `rmi` or `volume rm`): the caller makes it again and retries.
    pub fn lease_container(
        &self,
        id: &str,
        lease: &Lease,
        subdirs: &[&str],
    ) -> Result<Option<HeldLease>, StoreError> {
        let session = self.session()?;
        let staged = session.dir.join(format!("container-{id}"));
        for sub in subdirs {
            let d = staged.join(sub);
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        fs::create_dir_all(&staged).map_err(io_err(&staged))?;
        let path = staged.join(LEASE);
        let mut file = fs::File::create(&path).map_err(io_err(&path))?;
        file.lock().map_err(io_err(&path))?;
        let json = serde_json::to_vec(lease).map_err(|e| StoreError::BadJson {
            what: "container lease".into(),
            error: e,
        })?;
        file.write_all(&json).map_err(io_err(&path))?;
        let dir = self.container_dir(id);
        let parent = self.root.join("containers");
        fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        if !lease.recorded {
            // Before the dir appears: a kill from here on leaves the mark in the session.
            let mark = session
                .dir
                .join(format!("{}{id}", super::session::RM_CONTAINER_MARK));
            fs::File::create(&mark).map_err(io_err(&mark))?;
        }
        let lock = self.lock()?;
        if !lease.chains.iter().all(|c| self.snapshot_path(c).is_dir())
            || !lease.volumes.iter().all(|v| self.volume_data(v).is_dir())
        {
            drop(lock);
            let _ = super::session::remove_tree(&staged);
            return Ok(None);
        }
        fs::rename(&staged, &dir).map_err(io_err(&dir))?;
        drop(lock);
        Ok(Some(HeldLease { _file: file, dir }))
    }

    /// Locks the lease of the existing container `id` for a process that runs it again
    /// (`start`, the monitor): `Ok(None)` when another process holds it (the container runs).
    pub fn hold_lease(&self, id: &str) -> Result<Option<HeldLease>, StoreError> {
        let dir = self.container_dir(id);
        let path = dir.join(LEASE);
        let file = fs::File::open(&path).map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(HeldLease { _file: file, dir })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
        }
    }

    /// Whether a process holds the lease of container `id` (it runs).
    pub fn lease_locked(&self, id: &str) -> bool {
        let Ok(file) = fs::File::open(self.container_dir(id).join(LEASE)) else {
            return false;
        };
        matches!(file.try_lock_shared(), Err(fs::TryLockError::WouldBlock))
    }

    /// The lease file of container `id`, opened now: locking it (shared) later waits for
    /// the process that holds the lease even when the container's dir is gone by then (a
    /// `--rm` container's monitor removes the container before it lets go).
    pub fn open_lease(&self, id: &str) -> Option<fs::File> {
        fs::File::open(self.container_dir(id).join(LEASE)).ok()
    }

    /// Blocks until no process holds the lease of container `id` (it stopped), or until
    /// `timeout`; returns whether it is free.
    pub fn wait_lease_free(&self, id: &str, timeout: Option<std::time::Duration>) -> bool {
        let Ok(file) = fs::File::open(self.container_dir(id).join(LEASE)) else {
            return true;
        };
        let Some(timeout) = timeout else {
            return file.lock_shared().is_ok();
        };
        // flock has no timeout: poll, briefly at first (most processes stop at once).
        let deadline = std::time::Instant::now() + timeout;
        let mut pause = std::time::Duration::from_millis(2);
        loop {
            if !matches!(file.try_lock_shared(), Err(fs::TryLockError::WouldBlock)) {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    }

    /// The containers with a lease that holds its image's layers: running ones (lease
    /// locked) and recorded ones. Call with the store lock held.
    pub(crate) fn leased_containers(&self) -> Vec<ContainerUse> {
        let mut out = Vec::new();
        let Ok(dir) = fs::read_dir(self.root.join("containers")) else {
            return out;
        };
        for e in dir.flatten() {
            let Some(lease) = read_lease(&e.path()) else {
                continue;
            };
            let running = try_lock(&e.path().join(LEASE)).is_none();
            if running || lease.recorded {
                out.push(ContainerUse {
                    id: e.file_name().to_string_lossy().into_owned(),
                    lease,
                    running,
                });
            }
        }
        out
    }

    /// Removes the dirs of `--rm` containers whose runner died (lease unlocked, no record),
    /// under the store lock, then their anonymous volumes no other container uses: those of
    /// `ids`, or of every container (`None`: reads every lease). Returns the bytes freed.
    pub(crate) fn clean_dead_containers(&self, ids: Option<&[String]>) -> Result<u64, StoreError> {
        let dirs: Vec<PathBuf> = match ids {
            Some(ids) => ids.iter().map(|id| self.container_dir(id)).collect(),
            None => match fs::read_dir(self.root.join("containers")) {
                Ok(dir) => dir.flatten().map(|e| e.path()).collect(),
                Err(_) => return Ok(0),
            },
        };
        let candidates: Vec<PathBuf> = dirs
            .into_iter()
            .filter(|p| read_lease(p).is_some_and(|l| !l.recorded))
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let lock = self.lock()?;
        let mut freed = 0;
        let mut volumes = Vec::new();
        for path in candidates {
            if let Some(_held) = try_lock(&path.join(LEASE)) {
                volumes.extend(read_lease(&path).into_iter().flat_map(|l| l.own_volumes));
                freed += self.trash(&path)?;
            }
        }
        drop(lock);
        if !volumes.is_empty() {
            let removed = self.prune_volumes(|v| volumes.contains(&v.name))?;
            freed += removed.iter().map(|(_, n)| n).sum::<u64>();
        }
        Ok(freed)
    }
}

fn read_lease(dir: &Path) -> Option<Lease> {
    serde_json::from_slice(&fs::read(dir.join(LEASE)).ok()?).ok()
}
