//! Generates raw bindings to the system DPDK with bindgen and compiles the C shim for DPDK's
//! `static inline` functions. DPDK is found through pkg-config (`libdpdk`, Debian's 22.11).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc/wrapper.h");
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=csrc/shim.c");

    let lib = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!(
                "DPDK not found through pkg-config ({e}).\n\
                 Install it: apt-get install -y libdpdk-dev dpdk pkg-config clang libclang-dev"
            )
        });
    // rte_eth_from_rings (net_ring PMD) is used by tests and tools that build ring-backed ports;
    // shared linking auto-loads PMDs at run time but this symbol must be linked directly.
    println!("cargo:rustc-link-lib=rte_net_ring");

    // `pkg-config --cflags libdpdk` carries `-include rte_config.h` and `-march`; keep them all.
    let cflags = pkg_config::get_variable("libdpdk", "cflags").ok();
    let mut clang_args: Vec<String> = lib
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    clang_args.push("-include".into());
    clang_args.push("rte_config.h".into());
    clang_args.push("-march=corei7".into());
    let _ = cflags;

    let mut shim = cc::Build::new();
    shim.file("csrc/shim.c")
        .include("csrc")
        .flag("-O3")
        .flag("-include")
        .flag("rte_config.h");
    shim.flag("-march=corei7");
    for p in &lib.include_paths {
        shim.include(p);
    }
    shim.warnings(false).compile("rvs_dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_args(&clang_args)
        .clang_arg("-Icsrc")
        .rust_edition(bindgen::RustEdition::Edition2024)
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_get_.*")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_dev_probe")
        .allowlist_function("rte_dev_remove")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_pktmbuf_free_bulk")
        .allowlist_function("rte_mempool_free")
        .allowlist_function("rte_mempool_lookup")
        .allowlist_function("rte_ring_create")
        .allowlist_function("rte_ring_free")
        .allowlist_function("rte_ring_lookup")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_flow_.*")
        .allowlist_function("rvs_.*")
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_eth_.*")
        .allowlist_type("rte_flow_.*")
        .allowlist_var("RTE_ETH_.*")
        .allowlist_var("RTE_MBUF_.*")
        .allowlist_var("RING_F_.*")
        .allowlist_var("RTE_MAX_LCORE")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("RTE_ETHER_.*")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_flow_item_gtp_psc")
        .no_debug("rte_flow_item_gtp_psc")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed on the DPDK headers");

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("cannot write bindings.rs");
}
