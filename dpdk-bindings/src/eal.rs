//! The Environment Abstraction Layer: initialisation, lcores, launching work on them, and the
//! time-stamp counter.

use std::ffi::{CString, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::sys;

/// A logical core id as DPDK numbers them (`-l` list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Proof that the EAL is initialised in this process. Dropping it calls `rte_eal_cleanup`,
/// which releases hugepage memory, and then removes the runtime directory
/// (`/var/run/dpdk/PREFIX`) if this process created it: the EAL creates it even with
/// `--in-memory` and never removes it.
#[derive(Debug)]
pub struct Eal {
    created_dirs: Vec<std::path::PathBuf>,
}

/// The runtime directories the EAL will use for `args`, outermost first.
fn runtime_dirs<S: AsRef<str>>(args: &[S]) -> Vec<std::path::PathBuf> {
    let mut prefix = "rte".to_owned();
    let mut it = args.iter().map(AsRef::as_ref);
    while let Some(a) = it.next() {
        if a == "--file-prefix" {
            if let Some(v) = it.next() {
                prefix = v.to_owned();
            }
        } else if let Some(v) = a.strip_prefix("--file-prefix=") {
            prefix = v.to_owned();
        }
    }
    let base = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(x) if !is_root() => std::path::PathBuf::from(x).join("dpdk"),
        _ => std::path::PathBuf::from("/var/run/dpdk"),
    };
    vec![base.clone(), base.join(prefix)]
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    })
}

/// Why a launch or wait failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EalExit {
    /// The function returned this non-zero value.
    Failed(i32),
}

struct Job(Box<dyn FnOnce() -> i32 + Send>);

unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `Eal::launch` for exactly this call; it is
    // reclaimed once, here.
    let job = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // A panic must not unwind into C: catch it and report failure.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.0)).unwrap_or(-1)
}

impl Eal {
    /// Initialises the EAL with `args` (argv[0] is supplied here). Fails if the EAL was already
    /// initialised in this process or if `rte_eal_init` fails; the error then carries
    /// `rte_errno` (DPDK's log lines above it say more, e.g. "Cannot create lock").
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(Error::with_errno(
                "rte_eal_init (already initialised)",
                libc_ealready(),
            ));
        }
        let created_dirs: Vec<std::path::PathBuf> = runtime_dirs(args)
            .into_iter()
            .filter(|d| !d.exists())
            .collect();
        let mut owned: Vec<CString> = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new("rvs").expect("static string"));
        for a in args {
            owned.push(CString::new(a.as_ref()).map_err(|_| {
                Error::with_errno(format!("EAL argument {:?} contains NUL", a.as_ref()), 22)
            })?);
        }
        // rte_eal_init may permute argv; give it a private array of pointers. The strings
        // themselves are kept alive for the life of the process (DPDK may keep pointers).
        let mut argv: Vec<*mut std::ffi::c_char> =
            owned.iter().map(|s| s.as_ptr() as *mut _).collect();
        let argc = argv.len() as c_int;
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive the call (leaked
        // below); the EAL is initialised at most once per process (checked above).
        let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        std::mem::forget(owned);
        std::mem::forget(argv);
        if rc < 0 {
            INITIALISED.store(false, Ordering::SeqCst);
            return Err(Error::last("rte_eal_init"));
        }
        Ok(Eal { created_dirs })
    }

    /// The main lcore (the thread that called `init`).
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: EAL initialised (self exists).
        LcoreId(unsafe { sys::rte_get_main_lcore() })
    }

    /// Whether `lcore` is enabled in this EAL (part of `-l`).
    pub fn lcore_enabled(&self, lcore: LcoreId) -> bool {
        // SAFETY: EAL initialised; any id is accepted (out of range returns false).
        unsafe { sys::rte_lcore_is_enabled(lcore.0) != 0 }
    }

    /// Number of enabled lcores.
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: EAL initialised.
        unsafe { sys::rte_lcore_count() }
    }

    /// Runs `f` on worker lcore `lcore`. The lcore must be idle.
    pub fn launch<F>(&self, lcore: LcoreId, f: F) -> Result<()>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        let job = Box::into_raw(Box::new(Job(Box::new(f))));
        // SAFETY: trampoline takes ownership of `job` when it runs; if the launch fails the job
        // never runs and is reclaimed below.
        let rc = unsafe { sys::rte_eal_remote_launch(Some(trampoline), job.cast(), lcore.0) };
        if rc != 0 {
            // SAFETY: the launch failed, so trampoline will never see `job`.
            drop(unsafe { Box::from_raw(job) });
            return Err(Error::from_code(
                format!("rte_eal_remote_launch(lcore {})", lcore.0),
                rc,
            ));
        }
        Ok(())
    }

    /// Waits for the job on `lcore` to finish and returns its value.
    pub fn wait(&self, lcore: LcoreId) -> i32 {
        // SAFETY: EAL initialised; waiting on an idle lcore returns at once.
        unsafe { sys::rte_eal_wait_lcore(lcore.0) }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: all DPDK objects owned by the caller must be gone by now (ports closed,
        // mempools freed); lcores are idle because the owner waited for them.
        unsafe {
            sys::rte_eal_cleanup();
        }
        // Innermost first; a directory another process still uses is not empty and stays
        // (hugepage map files are unlinked by --in-memory/--huge-unlink; the multi-process
        // socket and config files of a --file-prefix are ours once the EAL is cleaned up).
        for d in self.created_dirs.iter().rev() {
            if let Ok(entries) = std::fs::read_dir(d) {
                for e in entries.flatten() {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    // The telemetry socket without suffix is the first process's: ours, since
                    // this process created the directory.
                    if name == "mp_socket"
                        || name == "config"
                        || name == "dpdk_telemetry.v2"
                        || name.starts_with("fbarray_")
                        || name.starts_with("hugepage_info")
                    {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(d);
        }
    }
}

const fn libc_ealready() -> i32 {
    114 // EALREADY
}

/// The calling thread's lcore id, or `None` on a thread the EAL does not know.
pub fn lcore_id() -> Option<LcoreId> {
    // SAFETY: reads a thread-local; no preconditions.
    let id = unsafe { sys::rvs_lcore_id() };
    (id < sys::RTE_MAX_LCORE).then_some(LcoreId(id))
}

/// Reads the time-stamp counter. Call it once per burst, never per packet.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no preconditions.
    unsafe { sys::rvs_rdtsc() }
}

/// TSC ticks per second, as the EAL calibrated it.
pub fn tsc_hz() -> u64 {
    // SAFETY: valid after EAL init; before it, DPDK returns 0, which callers must treat as unknown.
    unsafe { sys::rte_get_tsc_hz() }
}
