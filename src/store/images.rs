//! Image records: commit, resolve, list, tag, remove.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;
use std::time::Duration;

use redb::ReadableTable;

use super::db::{db_err, load_all, load_all_in, ImageRecord, IMAGES, SNAPSHOTS, TAGS};
use super::{io_err, ImageId, Store, StoreError, CONTEXT_CACHE};
use crate::image::digest::Digest;
use crate::image::layer::LayerInfo;
use crate::image::oci::{self, Descriptor, ImageConfig, Manifest};
use crate::image::reference::Reference;

/// How old an unreferenced file must be before [`Store::collect_garbage`] (run by
/// `image prune`) removes it.
pub const GC_GRACE: Duration = Duration::from_secs(3600);

/// An image and its tags.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    pub record: ImageRecord,
    /// Tags, sorted.
    pub tags: Vec<Reference>,
}

/// One line of `rmi` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveEvent {
    /// `Untagged: busybox:latest`
    Untagged(Reference),
    /// `Deleted: sha256:…` (image ID, then the chain IDs of layers no other image uses).
    Deleted(Digest),
}

impl Store {
    /// Stores a new image made of `config` and already-stored `layers` (bottom to top), tags
    /// it with `tags` (moving a tag away from any image that had it) and returns its ID.
    pub fn commit_image(
        &self,
        config: &ImageConfig,
        layers: &[LayerInfo],
        tags: &[Reference],
    ) -> Result<ImageId, StoreError> {
        self.commit_image_annotated(config, layers, tags, &BTreeMap::new())
    }

    /// [`Store::commit_image`] with `annotations` in the image manifest (`build
    /// --annotation`): they change the manifest (and its digest, what a push sends), not the
    /// config or the image ID.
    pub fn commit_image_annotated(
        &self,
        config: &ImageConfig,
        layers: &[LayerInfo],
        tags: &[Reference],
        annotations: &BTreeMap<String, String>,
    ) -> Result<ImageId, StoreError> {
        let bytes = serde_json::to_vec(config).map_err(|e| StoreError::BadJson {
            what: "image config".into(),
            error: e,
        })?;
        if annotations.is_empty() {
            return self.add_image(&bytes, layers, None, tags);
        }
        let digest = Digest::of(&bytes);
        let manifest = oci_manifest(&digest, bytes.len(), layers, Some(annotations.clone()))?;
        self.add_image(&bytes, layers, Some(&manifest), tags)
    }

    /// Like [`Store::commit_image`] but with the config's exact bytes (so its ID is kept) and,
    /// optionally, the exact manifest bytes (so the manifest digest is kept). Without a
    /// manifest, an OCI manifest is generated.
    pub fn add_image(
        &self,
        config_bytes: &[u8],
        layers: &[LayerInfo],
        manifest_bytes: Option<&[u8]>,
        tags: &[Reference],
    ) -> Result<ImageId, StoreError> {
        tags.iter().try_for_each(check_tag)?;
        // Never store a config that `read_blob` would refuse to read back (a build with a
        // 50 MB LABEL fails here, clearly, rather than making an image nothing can use).
        if config_bytes.len() as u64 > super::MAX_JSON_SIZE {
            return Err(StoreError::TooLarge(format!(
                "the image config ({} bytes)",
                config_bytes.len()
            )));
        }
        // Only the fields checked and recorded here are read (a config can be large: a 50 MB
        // label); the others are skipped without being copied.
        #[derive(serde::Deserialize)]
        struct ConfigHead {
            #[serde(default)]
            created: Option<String>,
            rootfs: crate::image::oci::RootFs,
        }
        let config: ConfigHead =
            serde_json::from_slice(config_bytes).map_err(|e| StoreError::BadJson {
                what: "image config".into(),
                error: e,
            })?;
        let diff_ids: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
        let config_diff_ids: Vec<&Digest> = config.rootfs.diff_ids.iter().collect();
        if diff_ids != config_diff_ids {
            return Err(StoreError::Invalid(format!(
                "config lists {} diff_ids that do not match the {} layers given",
                config_diff_ids.len(),
                diff_ids.len()
            )));
        }
        let id = self.put_blob(config_bytes)?;
        let manifest_bytes = match manifest_bytes {
            Some(m) => m.to_vec(),
            None => oci_manifest(&id, config_bytes.len(), layers, None)?,
        };
        let parsed: Manifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| StoreError::BadJson {
                what: "manifest".into(),
                error: e,
            })?;
        let manifest_digest = self.put_blob(&manifest_bytes)?;
        let record = ImageRecord {
            id: id.clone(),
            manifest: Descriptor {
                media_type: parsed
                    .media_type
                    .unwrap_or_else(|| oci::MEDIA_MANIFEST.to_string()),
                digest: manifest_digest,
                size: manifest_bytes.len() as u64,
                annotations: None,
                platform: None,
            },
            config_size: config_bytes.len() as u64,
            layers: layers.to_vec(),
            created: config.created.clone(),
            added: chrono::Utc::now().timestamp(),
            repo_digests: Vec::new(),
        };
        let record_json = serde_json::to_vec(&record).map_err(|e| StoreError::BadJson {
            what: "image record".into(),
            error: e,
        })?;
        // Under the lock: make sure nothing this image needs was collected meanwhile.
        let check_blobs = || {
            for d in std::iter::once(&record.manifest.digest)
                .chain(std::iter::once(&record.id))
                .chain(layers.iter().map(|l| &l.digest))
            {
                if !self.has_blob(d) {
                    return Err(StoreError::MissingBlob(d.clone()));
                }
            }
            Ok(())
        };
        // A rebuild that changed nothing needs no commit: a read (which opens the database
        // without writing to it) tells.
        let same = self.read_db(|tx| {
            check_blobs()?;
            let same = unchanged(tx, &record, tags)?;
            if same {
                self.write_index_in(tx)?; // as every commit does, should it be stale
            }
            Ok(same)
        })?;
        if same {
            return Ok(id);
        }
        self.with_db(|db| {
            check_blobs()?;
            if unchanged(&db.begin_read().map_err(db_err)?, &record, tags)? {
                return Ok(()); // made so by another process meanwhile
            }
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut images = tx.open_table(IMAGES).map_err(db_err)?;
                let existing = images
                    .get(id.hex())
                    .map_err(db_err)?
                    .map(|v| v.value().to_vec());
                let json = match existing {
                    // Keep when the image first arrived and where it was pushed or pulled;
                    // only the manifest may change.
                    Some(old) => match serde_json::from_slice::<ImageRecord>(&old) {
                        Ok(old) => serde_json::to_vec(&ImageRecord {
                            added: old.added,
                            repo_digests: old.repo_digests,
                            ..record.clone()
                        })
                        .unwrap_or_else(|_| record_json.clone()),
                        Err(_) => record_json.clone(),
                    },
                    None => record_json.clone(),
                };
                images.insert(id.hex(), json.as_slice()).map_err(db_err)?;
                let mut t = tx.open_table(TAGS).map_err(db_err)?;
                for tag in tags {
                    t.insert(tag.to_string().as_str(), id.hex())
                        .map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })?;
        Ok(id)
    }

    /// Records that image `id` is `repository@digest` in a registry (after a push or a pull),
    /// for `inspect`'s `RepoDigests`. Nothing happens when the image is not stored.
    pub fn add_repo_digest(
        &self,
        id: &ImageId,
        repository: &Reference,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        let entry = format!("{}@{digest}", repository.familiar_name());
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut images = tx.open_table(IMAGES).map_err(db_err)?;
                let old = images
                    .get(id.hex())
                    .map_err(db_err)?
                    .and_then(|v| serde_json::from_slice::<ImageRecord>(v.value()).ok());
                let Some(mut rec) = old else { return Ok(()) };
                // One digest per repository, as docker: a new push replaces the old one.
                let prefix = format!("{}@", repository.familiar_name());
                rec.repo_digests.retain(|d| !d.starts_with(&prefix));
                rec.repo_digests.push(entry);
                rec.repo_digests.sort();
                let json = serde_json::to_vec(&rec).map_err(|e| StoreError::BadJson {
                    what: "image record".into(),
                    error: e,
                })?;
                images.insert(id.hex(), json.as_slice()).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }

    /// Finds an image by reference (`busybox`, `busybox:1.36`, `name@sha256:…`), full ID
    /// (`sha256:…`) or unique ID prefix, as docker does.
    pub fn resolve_image(&self, name: &str) -> Result<ImageRecord, StoreError> {
        self.resolve_name(name).map(|(r, _)| r)
    }

    /// Like [`Store::resolve_image`], also returning the tag when `name` was a tag.
    pub fn resolve_name(&self, name: &str) -> Result<(ImageRecord, Option<Reference>), StoreError> {
        self.read_db(|tx| {
            if let Some(found) = resolve_tag_in(tx, name)? {
                return Ok(found);
            }
            let (records, tags) = load_all_in(tx)?;
            resolve_in(&records, &tags, name)
        })
    }

    /// The tags of image `id`, sorted.
    pub fn image_tags(&self, id: &ImageId) -> Result<Vec<Reference>, StoreError> {
        self.read_db(|tx| {
            let (_, tags) = load_all_in(tx)?;
            let mut out: Vec<Reference> = tags
                .into_iter()
                .filter(|(_, i)| i == id.hex())
                .map(|(r, _)| r)
                .collect();
            out.sort();
            Ok(out)
        })
    }

    /// The parsed config of image `id`.
    pub fn image_config(&self, id: &ImageId) -> Result<ImageConfig, StoreError> {
        let bytes = self.read_blob(id)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::BadJson {
            what: format!("config {id}"),
            error: e,
        })
    }

    /// All images with their tags, newest first.
    pub fn list_images(&self) -> Result<Vec<ImageSummary>, StoreError> {
        self.read_db(|tx| {
            let (records, tags) = load_all_in(tx)?;
            let mut out: Vec<ImageSummary> = records
                .into_iter()
                .map(|record| {
                    let mut t: Vec<Reference> = tags
                        .iter()
                        .filter(|(_, id)| id == record.id.hex())
                        .map(|(r, _)| r.clone())
                        .collect();
                    t.sort();
                    ImageSummary { record, tags: t }
                })
                .collect();
            out.sort_by(|a, b| {
                (b.record.created_time(), b.record.added, &b.record.id).cmp(&(
                    a.record.created_time(),
                    a.record.added,
                    &a.record.id,
                ))
            });
            Ok(out)
        })
    }

    /// Points `reference` at image `source` (any name [`Store::resolve_image`] takes).
    pub fn tag(&self, source: &str, reference: &Reference) -> Result<ImageId, StoreError> {
        check_tag(reference)?;
        self.with_db(|db| {
            let (records, tags) = load_all(db)?;
            let (rec, _) = resolve_in(&records, &tags, source)?;
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(TAGS).map_err(db_err)?;
                t.insert(reference.to_string().as_str(), rec.id.hex())
                    .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            Ok(rec.id)
        })
    }

    /// `rmi`: untags `name`, and deletes the image when no tag is left (or when it was named
    /// by ID). Naming by ID an image with several tags needs `force`. Layers, blobs and
    /// snapshots still used by other images or by containers stay.
    ///
    /// Containers, as docker: an image a container uses (running or stopped) is not deleted
    /// by its last tag (with `force` it is only untagged), nor by ID without `force`; by ID
    /// with `force` only when no container using it runs.
    pub fn remove_image(&self, name: &str, force: bool) -> Result<Vec<RemoveEvent>, StoreError> {
        self.with_db(|db| {
            let (records, tags) = load_all(db)?;
            let (rec, by_tag) = resolve_in(&records, &tags, name)?;
            let image_tags: Vec<Reference> = tags
                .iter()
                .filter(|(_, id)| id == rec.id.hex())
                .map(|(r, _)| r.clone())
                .collect();
            let uses = self.container_uses(&db.begin_read().map_err(db_err)?)?;
            let user = uses
                .iter()
                .find(|u| u.lease.image_id == rec.id && u.running)
                .or_else(|| uses.iter().find(|u| u.lease.image_id == rec.id));
            let short = |id: &str| id[..id.len().min(12)].to_string();
            let mut events = Vec::new();
            let untag: Vec<Reference> = match (&by_tag, user) {
                (Some(r), _) if image_tags.len() > 1 => vec![r.clone()],
                (Some(_), Some(u)) if !force => {
                    return Err(StoreError::Conflict(format!(
                        "unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                        short(&u.id),
                        rec.id.short()
                    )))
                }
                // Forced, by its last tag, while a container uses it: docker only untags.
                (Some(r), Some(_)) => vec![r.clone()],
                (Some(_), None) => image_tags.clone(),
                (None, Some(u)) if u.running || !force => {
                    return Err(StoreError::Conflict(format!(
                        "unable to delete {} ({}) - image is being used by {} container {}",
                        rec.id.short(),
                        if u.running { "cannot be forced" } else { "must be forced" },
                        if u.running { "running" } else { "stopped" },
                        short(&u.id)
                    )))
                }
                (None, _) if image_tags.len() > 1 && !force => {
                    return Err(StoreError::Conflict(format!(
                        "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        rec.id.short()
                    )))
                }
                (None, _) => image_tags.clone(),
            };
            let delete = untag.len() == image_tags.len() && !(by_tag.is_some() && user.is_some());
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(TAGS).map_err(db_err)?;
                for r in &untag {
                    t.remove(r.to_string().as_str()).map_err(db_err)?;
                    events.push(RemoveEvent::Untagged(r.clone()));
                }
            }
            let mut doomed = Vec::new();
            if delete {
                let mut images = tx.open_table(IMAGES).map_err(db_err)?;
                images.remove(rec.id.hex()).map_err(db_err)?;
                let others: Vec<&ImageRecord> =
                    records.iter().filter(|r| r.id != rec.id).collect();
                doomed = unshared(&rec, &others);
                // What containers use stays (a stopped container's image deleted by ID).
                let leased_blobs: HashSet<&Digest> =
                    uses.iter().flat_map(|u| &u.lease.layers).collect();
                let leased_chains: HashSet<&Digest> =
                    uses.iter().flat_map(|u| &u.lease.chains).collect();
                doomed.retain(|d| match d {
                    Doomed::Blob(b) => !leased_blobs.contains(b),
                    Doomed::Snapshot(c) => !leased_chains.contains(c),
                });
                // What the build cache uses stays, as docker keeps build cache on `rmi`.
                let cached = self.cached_layers(db)?;
                if !cached.is_empty() {
                    let blobs: HashSet<&Digest> = cached.iter().map(|l| &l.digest).collect();
                    let diffs: HashSet<String> =
                        cached.iter().map(|l| l.diff_id.to_string()).collect();
                    let chains: HashSet<String> =
                        self.snapshots_of_diffs(db, &diffs)?.into_iter().collect();
                    doomed.retain(|d| match d {
                        Doomed::Blob(b) => !blobs.contains(b),
                        Doomed::Snapshot(c) => !chains.contains(c.hex()),
                    });
                }
                let mut snaps = tx.open_table(SNAPSHOTS).map_err(db_err)?;
                events.push(RemoveEvent::Deleted(rec.id.clone()));
                for chain in doomed.iter().filter_map(|d| match d {
                    Doomed::Snapshot(c) => Some(c),
                    _ => None,
                }) {
                    snaps.remove(chain.hex()).map_err(db_err)?;
                    events.push(RemoveEvent::Deleted(chain.clone()));
                }
            }
            tx.commit().map_err(db_err)?;
            crate::killpoint::reached("rmi-committed");
            // Files go after the commit: a crash here leaves only unreferenced files.
            // Snapshots are moved aside under the lock, and deleted once it is released.
            let mut trashed = Vec::new();
            for d in doomed {
                match d {
                    Doomed::Blob(b) => {
                        let _ = fs::remove_file(self.blob_path(&b));
                    }
                    Doomed::Snapshot(c) => {
                        if let Ok(Some(moved)) = self.move_to_trash(&self.snapshot_path(&c)) {
                            trashed.push(moved);
                        }
                    }
                }
            }
            Ok((events, trashed))
        })
        .map(|(events, trashed)| {
            for moved in trashed {
                let _ = super::session::remove_tree(&moved);
            }
            events
        })
    }

    /// `image prune`: removes dangling (untagged) images, or with `all` every image.
    /// Returns what was removed and the bytes of blobs freed.
    pub fn prune_images(&self, all: bool) -> Result<(Vec<RemoveEvent>, u64), StoreError> {
        self.prune_images_matching(all, &mut |_| Ok(true))
    }

    /// [`Store::prune_images`] of only the images `selected` picks (`image prune --filter`).
    pub fn prune_images_matching(
        &self,
        all: bool,
        selected: &mut dyn FnMut(&ImageSummary) -> Result<bool, StoreError>,
    ) -> Result<(Vec<RemoveEvent>, u64), StoreError> {
        let mut events = Vec::new();
        let mut freed = 0u64;
        let used: HashSet<ImageId> = self
            .read_db(|tx| self.container_uses(tx))?
            .into_iter()
            .map(|u| u.lease.image_id)
            .collect();
        for img in self.list_images()? {
            if (!all && !img.tags.is_empty()) || used.contains(&img.record.id) {
                continue; // docker keeps images containers use
            }
            if !selected(&img)? {
                continue;
            }
            let before = self.blob_bytes(&img.record);
            let ev = self.remove_image(&img.record.id.to_string(), true)?;
            let after = self.blob_bytes(&img.record);
            freed += before.saturating_sub(after);
            events.extend(ev);
        }
        freed += self.collect_garbage(GC_GRACE)?;
        Ok((events, freed))
    }

    /// Removes what no image references and is older than `grace`: blobs, snapshots and
    /// temp files left by a crashed or killed rbuild. The grace period keeps the files of
    /// concurrent writers that have not committed yet. Returns the bytes freed.
    pub fn collect_garbage(&self, grace: Duration) -> Result<u64, StoreError> {
        let old = |p: &Path| {
            fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default() > grace)
                .unwrap_or(false)
        };
        // Dead sessions' temp files, first (their owners are provably gone).
        let leftovers = self.clean_leftovers()?;
        self.with_db(|db| {
            let (records, _) = load_all(db)?;
            let mut live: HashSet<String> = HashSet::new();
            let mut live_chains: HashSet<String> = HashSet::new();
            for r in &records {
                live.insert(r.manifest.digest.hex().to_string());
                live.insert(r.id.hex().to_string());
                live.extend(r.layers.iter().map(|l| l.digest.hex().to_string()));
                live_chains.extend(r.chain_ids().iter().map(|c| c.hex().to_string()));
            }
            // The build cache keeps its layers and their snapshots, as docker keeps build
            // cache across `image prune` (`builder prune` drops the records first).
            let cached = self.cached_layers(db)?;
            live.extend(cached.iter().map(|l| l.digest.hex().to_string()));
            // Downloads kept for `ADD` URL revalidation.
            live.extend(self.download_blobs(db)?.iter().map(|d| d.hex().to_string()));
            let cached_diffs: HashSet<String> =
                cached.iter().map(|l| l.diff_id.to_string()).collect();
            live_chains.extend(self.snapshots_of_diffs(db, &cached_diffs)?);
            // What containers (running, or stopped and recorded) use.
            for u in self.container_uses(&db.begin_read().map_err(db_err)?)? {
                live.extend(u.lease.layers.iter().map(|d| d.hex().to_string()));
                live_chains.extend(u.lease.chains.iter().map(|c| c.hex().to_string()));
            }
            let mut freed = 0u64;
            let blobs = self.root.join("blobs/sha256");
            for e in fs::read_dir(&blobs).map_err(io_err(&blobs))?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !live.contains(&name) && old(&e.path()) {
                    freed += e.metadata().map(|m| m.len()).unwrap_or(0);
                    let _ = fs::remove_file(e.path());
                }
            }
            let snaps = self.root.join("snapshots");
            let mut dropped = Vec::new();
            for e in fs::read_dir(&snaps).map_err(io_err(&snaps))?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !live_chains.contains(&name) && !name.starts_with('.') && old(&e.path()) {
                    let _ = self.trash(&e.path());
                    dropped.push(name);
                }
            }
            // The context digest cache of earlier versions (one redb file and its lock), and
            // temp files a crash left among the context indexes.
            for legacy in ["context-cache.redb", "context-cache.lock"] {
                let _ = fs::remove_file(self.root.join(legacy));
            }
            if let Ok(dir) = fs::read_dir(self.root.join(CONTEXT_CACHE)) {
                for e in dir.flatten() {
                    if e.file_name().to_string_lossy().starts_with(".tmp-") && old(&e.path()) {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
            if !dropped.is_empty() {
                let tx = db.begin_write().map_err(db_err)?;
                {
                    let mut t = tx.open_table(SNAPSHOTS).map_err(db_err)?;
                    for name in &dropped {
                        t.remove(name.as_str()).map_err(db_err)?;
                    }
                }
                tx.commit().map_err(db_err)?;
            }
            Ok(freed + leftovers)
        })
        .inspect(|_| {
            // Pooled files of the snapshots just removed (and of earlier `rmi`s).
            self.pool().sweep();
        })
    }

    fn blob_bytes(&self, rec: &ImageRecord) -> u64 {
        std::iter::once(&rec.manifest.digest)
            .chain(std::iter::once(&rec.id))
            .chain(rec.layers.iter().map(|l| &l.digest))
            .filter_map(|d| fs::metadata(self.blob_path(d)).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// The OCI manifest of the config `config` (`config_size` bytes) and `layers`, as bytes.
fn oci_manifest(
    config: &Digest,
    config_size: usize,
    layers: &[LayerInfo],
    annotations: Option<BTreeMap<String, String>>,
) -> Result<Vec<u8>, StoreError> {
    let layers = layers.iter().map(LayerInfo::descriptor).collect();
    let m = Manifest::oci(config, config_size as u64, layers, annotations);
    serde_json::to_vec(&m).map_err(|e| StoreError::BadJson {
        what: "manifest".into(),
        error: e,
    })
}

/// `name` as a tag, looked up by key (two reads, whatever the number of images and tags):
/// what [`resolve_in`] finds first, or `None` for anything else (IDs, digests, unknown tags).
fn resolve_tag_in(
    tx: &redb::ReadTransaction,
    name: &str,
) -> Result<Option<(ImageRecord, Option<Reference>)>, StoreError> {
    let Ok(r) = Reference::parse(name) else {
        return Ok(None);
    };
    if r.digest.is_some() {
        return Ok(None);
    }
    let tags = tx.open_table(TAGS).map_err(db_err)?;
    let Some(id) = tags.get(r.to_string().as_str()).map_err(db_err)? else {
        return Ok(None);
    };
    let images = tx.open_table(IMAGES).map_err(db_err)?;
    let Some(rec) = images.get(id.value()).map_err(db_err)? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<ImageRecord>(rec.value())
        .ok()
        .map(|rec| (rec, Some(r))))
}

/// Whether `record` is stored already (but for when it arrived) with every one of `tags`.
fn unchanged(
    tx: &redb::ReadTransaction,
    record: &ImageRecord,
    tags: &[Reference],
) -> Result<bool, StoreError> {
    let images = tx.open_table(IMAGES).map_err(db_err)?;
    let Some(old) = images.get(record.id.hex()).map_err(db_err)? else {
        return Ok(false);
    };
    let Ok(old) = serde_json::from_slice::<ImageRecord>(old.value()) else {
        return Ok(false);
    };
    if old
        != (ImageRecord {
            added: old.added,
            repo_digests: old.repo_digests.clone(),
            ..record.clone()
        })
    {
        return Ok(false);
    }
    let t = tx.open_table(TAGS).map_err(db_err)?;
    for tag in tags {
        match t.get(tag.to_string().as_str()).map_err(db_err)? {
            Some(id) if id.value() == record.id.hex() => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

enum Doomed {
    Blob(Digest),
    Snapshot(Digest),
}

/// The blobs and snapshots of `rec` that none of `others` uses (snapshots top first).
fn unshared(rec: &ImageRecord, others: &[&ImageRecord]) -> Vec<Doomed> {
    let mut live: HashSet<&Digest> = HashSet::new();
    let mut live_chains: HashSet<Digest> = HashSet::new();
    for o in others {
        live.insert(&o.manifest.digest);
        live.insert(&o.id);
        live.extend(o.layers.iter().map(|l| &l.digest));
        live_chains.extend(o.chain_ids());
    }
    let mut out = Vec::new();
    for c in rec.chain_ids().into_iter().rev() {
        if !live_chains.contains(&c) {
            out.push(Doomed::Snapshot(c));
        }
    }
    let mut seen = HashSet::new();
    for d in std::iter::once(&rec.manifest.digest)
        .chain(std::iter::once(&rec.id))
        .chain(rec.layers.iter().map(|l| &l.digest))
    {
        if !live.contains(d) && seen.insert(d) {
            out.push(Doomed::Blob(d.clone()));
        }
    }
    out
}

/// Resolves `name` among `records`; also returns the tag when it was found by tag.
/// A tag names a repository and a tag; a digest reference (`name@sha256:…`) cannot be moved
/// to another image, and a tag stored with one could not be looked up or removed by it.
fn check_tag(tag: &Reference) -> Result<(), StoreError> {
    if tag.digest.is_some() {
        return Err(StoreError::Invalid(format!(
            "refusing to create a tag with a digest reference: {}",
            tag.familiar()
        )));
    }
    Ok(())
}

pub(crate) fn resolve_in(
    records: &[ImageRecord],
    tags: &[(Reference, String)],
    name: &str,
) -> Result<(ImageRecord, Option<Reference>), StoreError> {
    let by_hex = |hex: &str| records.iter().find(|r| r.id.hex() == hex).cloned();
    if let Ok(r) = Reference::parse(name) {
        if let Some(d) = &r.digest {
            if let Some(rec) = records.iter().find(|rec| &rec.manifest.digest == d) {
                return Ok((rec.clone(), None));
            }
        } else if let Some((_, id)) = tags.iter().find(|(t, _)| t == &r) {
            if let Some(rec) = by_hex(id) {
                return Ok((rec, Some(r)));
            }
        }
    }
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hex = hex.to_ascii_lowercase();
        let matches: Vec<&ImageRecord> = records
            .iter()
            .filter(|r| r.id.hex().starts_with(&hex))
            .collect();
        match matches.len() {
            0 => {}
            1 => return Ok((matches[0].clone(), None)),
            _ => return Err(StoreError::Ambiguous(name.to_string())),
        }
    }
    Err(StoreError::NoSuchImage(name.to_string()))
}
