//! rbuild: build container images from Dockerfiles, run them, and move them between machines.
//!
//! The library is split the way the data flows (see `DESIGN.md` in the shared folder):
//! [`dockerfile`] reads Dockerfiles (syntax only); [`build`] turns them into images: its
//! frontend (`build::convert`) makes typed config changes and operations with expanded words,
//! a stage runs its operations through the syntax-free step engine and the solver schedules
//! the stages; [`image`] models images, writes/applies layers and owns the config rules
//! (`image::config_rules`, shared by builds and `import -c`); [`context`] reads build
//! contexts; [`store`] keeps images; [`archive`] moves them as tarballs (using only `store` and
//! `image`); [`container`] runs them; and [`cli`] is thin glue.

pub mod archive;
pub mod build;
pub mod cli;
pub mod container;
pub mod context;
pub mod dockerfile;
pub mod image;
pub(crate) mod killpoint;
pub mod network;
pub mod registry;
pub mod store;
pub mod terminal;
