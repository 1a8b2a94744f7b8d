//! Declares `cfg(loom)` (set by `RUSTFLAGS="--cfg loom"` for the loom model tests) so that
//! `unexpected_cfgs` knows it; the crate inherits the workspace lints, which cannot be merged
//! with a crate-level `[lints.rust]` table.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
