//! The `alertmesh` command's own parts, which nothing in the library uses.

pub mod demo;
pub mod lookup;
pub mod tail;
