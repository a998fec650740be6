//! alertmesh-sim: the multi-node simulator of issue 7. Not built yet: this crate is empty.
