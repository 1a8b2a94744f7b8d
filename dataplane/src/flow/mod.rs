//! Per-worker connection tracking.
//!
//! Each worker owns one [`FlowTable`]: a preallocated, fixed-capacity hash table of
//! [`Flow`]s keyed by the client-side 5-tuple. It never allocates after construction; when a
//! bucket is full, a new connection is refused (the caller drops and counts it) while existing
//! flows are untouched. Expired entries are reclaimed lazily: a slot whose deadline has passed is
//! free for the next insert into its bucket, so no scan of the table is ever needed.

mod table;
pub mod tcp;

pub use table::{BUCKET_SLOTS, Flow, FlowKey, FlowTable, TableFull};
