//! rbuild's minimal Linux container runtime.
//!
//! Everything in rbuild that needs `unsafe` or a raw syscall lives in this crate:
//! namespaces, mounts, pivot_root, process spawning, ptys and signals.
