//! HTTP endpoints, one file each.

pub mod batch;
pub mod posts;
