//! eddy-fill: the fill pipeline (manifest → plan → download → verify → install →
//! evict) and the control-plane wire types.
//!
//! It knows nothing about serving and depends on no other eddy crate. Nothing is
//! here yet: the fill issues build it. The store side of installs already exists
//! (`eddy::store::import`), and this crate will drive it through a trait.
