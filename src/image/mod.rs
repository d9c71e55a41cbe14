//! The image model and layers.
//!
//! - [`digest`]: `Digest` (`sha256:…`), hashing readers/writers, [`digest::chain_ids`].
//! - [`reference`](mod@reference): docker image references (`busybox` ⇄ `docker.io/library/busybox:latest`).
//! - [`oci`]: OCI/docker JSON types (descriptor, manifest, index, image config) and media types.
//! - [`compress`]: compression detection and streaming (gzip, zstd, bzip2, xz).
//! - [`layer`]: deterministic layer writer (dir, overlay upper dir, change set) and safe applier.
//! - [`sparse`]: reading and writing sparse files (holes kept).
//! - [`path`]: lexical path cleaning (Go's `path.Clean`) and splitting, for every path inside
//!   an image or a build context.
//! - [`limits`]: bounds on paths, layers and tags, checked where images enter the store.
//!
//! A layer's *digest* names the stored (compressed) blob; its *DiffID* names the uncompressed
//! tar. [`layer::LayerInfo`] carries both, under those names.

pub mod compress;
pub mod config_rules;
pub mod digest;
pub mod layer;
pub mod limits;
pub mod oci;
pub mod path;
pub mod reference;
pub mod sparse;

pub use digest::Digest;
pub use reference::Reference;
