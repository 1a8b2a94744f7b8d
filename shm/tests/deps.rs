//! rvs-shm sits between the two processes: rvs-control depends on it, so it must depend on
//! neither the dataplane nor the DPDK bindings.

#[test]
fn depends_on_neither_dataplane_nor_dpdk() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("shm/Cargo.toml is readable");
    for line in manifest.lines().map(str::trim_start) {
        for forbidden in ["rvs-dataplane", "dpdk", "rvs-control"] {
            assert!(
                !line.starts_with(forbidden),
                "rvs-shm must not depend on {forbidden}: {line}"
            );
        }
    }
}
