//! rbuild: build container images from Dockerfiles, run them, and move them between machines.
//!
//! The library is split the way the data flows (see `DESIGN.md` in the shared folder):
//! [`dockerfile`] reads Dockerfiles, [`image`] models images and writes/applies layers,
//! [`store`] keeps them, [`archive`] moves them as tarballs, and [`cli`] is thin glue.

pub mod archive;
pub mod build;
pub mod cli;
pub mod container;
pub mod context;
pub mod dockerfile;
pub mod image;
pub(crate) mod killpoint;
pub mod registry;
pub mod store;
