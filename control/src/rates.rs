//! IPVS's rate estimator (`net/netfilter/ipvs/ip_vs_est.c`), fed from the dataplane's counters.
//!
//! The kernel samples every service's and real server's cumulative counters every two seconds
//! and keeps an exponentially weighted moving average (weight ¼) of the per-second rate in
//! fixed point: connections and packets scaled by 2¹⁰, bytes by 2⁵. With `Δ` the increase of a
//! counter over one 2 s sample:
//!
//! ```text
//! rate  = Δ << 9            (conns, packets: Δ/2 s × 2¹⁰)      rate = Δ << 4   (bytes: Δ/2 s × 2⁵)
//! est  += (rate - est) >> 2  (arithmetic shift: floor)
//! shown = (est + 0x1FF) >> 10                                   shown = (est + 0xF) >> 5
//! ```
//!
//! [`Estimator`] is that arithmetic for one counter set; [`RateTable`] keeps one per key (a
//! service, or a server of a service) and follows the keys present in each sample. The caller
//! samples every [`SAMPLE_PERIOD`]; what `ipvsadm -L --rate` shows is [`Estimator::rates`].

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use crate::api::{Rates, Stats};

/// How often the counters are sampled, as the kernel's `estimation_timer` (2 × HZ).
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(2);

/// One counter's estimate: the last counter value seen and the scaled average.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Ewma {
    last: u64,
    /// The scaled average. Never negative (see [`Ewma::step`]); signed because the kernel's
    /// update `(rate - est) >> 2` is a signed, flooring shift.
    est: i64,
}

impl Ewma {
    fn start(value: u64) -> Self {
        Ewma {
            last: value,
            est: 0,
        }
    }

    /// One 2 s sample: `shift` is 9 for conns and packets, 4 for bytes.
    fn step(&mut self, value: u64, shift: u32) {
        let delta = value.wrapping_sub(self.last);
        self.last = value;
        // The kernel computes in u64 and reinterprets as s64; saturate instead so an absurd
        // delta cannot wrap into a small or negative rate.
        let rate = if delta > (i64::MAX as u64) >> shift {
            i64::MAX
        } else {
            i64::try_from(delta << shift).unwrap_or(i64::MAX)
        };
        self.est = self.est.saturating_add(rate.saturating_sub(self.est) >> 2);
    }

    /// The average per second: `(est + round) >> scale`.
    fn read(self, round: i64, scale: u32) -> u64 {
        u64::try_from(self.est.saturating_add(round) >> scale).unwrap_or(0)
    }
}

/// The rate estimator of one counter set (a service or a real server), as the kernel's
/// `struct ip_vs_estimator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimator {
    conns: Ewma,
    inpkts: Ewma,
    outpkts: Ewma,
    inbytes: Ewma,
    outbytes: Ewma,
}

impl Estimator {
    /// Starts estimating from the counters as they are now; every rate reads 0 until the first
    /// [`sample`](Self::sample).
    pub fn new(initial: Stats) -> Self {
        Estimator {
            conns: Ewma::start(initial.conns),
            inpkts: Ewma::start(initial.inpkts),
            outpkts: Ewma::start(initial.outpkts),
            inbytes: Ewma::start(initial.inbytes),
            outbytes: Ewma::start(initial.outbytes),
        }
    }

    /// Takes one sample; call it every [`SAMPLE_PERIOD`] with the cumulative counters (which
    /// only grow; after zeroing them call [`reset`](Self::reset) instead).
    pub fn sample(&mut self, current: Stats) {
        self.conns.step(current.conns, 9);
        self.inpkts.step(current.inpkts, 9);
        self.outpkts.step(current.outpkts, 9);
        self.inbytes.step(current.inbytes, 4);
        self.outbytes.step(current.outbytes, 4);
    }

    /// The estimated rates per second, rounded as `ip_vs_read_estimator`.
    pub fn rates(&self) -> Rates {
        Rates {
            cps: self.conns.read(0x1FF, 10),
            inpps: self.inpkts.read(0x1FF, 10),
            outpps: self.outpkts.read(0x1FF, 10),
            inbps: self.inbytes.read(0xF, 5),
            outbps: self.outbytes.read(0xF, 5),
        }
    }

    /// The counters were zeroed (`ipvsadm -Z`): rates drop to 0 and estimation restarts from
    /// `current`, as `ip_vs_zero_estimator`.
    pub fn reset(&mut self, current: Stats) {
        *self = Estimator::new(current);
    }
}

/// Whether any counter of `now` is below the same counter of `before`: the counters were
/// zeroed (or the dataplane restarted) since the last sample.
fn went_backwards(before: &Estimator, now: &Stats) -> bool {
    now.conns < before.conns.last
        || now.inpkts < before.inpkts.last
        || now.outpkts < before.outpkts.last
        || now.inbytes < before.inbytes.last
        || now.outbytes < before.outbytes.last
}

/// One [`Estimator`] per key (for instance `(ServiceKey, Option<SocketAddrV4>)`: a service, or
/// one of its servers), following the set of keys each sample brings.
#[derive(Debug, Clone)]
pub struct RateTable<K: Hash + Eq + Clone> {
    estimators: HashMap<K, Estimator>,
}

impl<K: Hash + Eq + Clone> Default for RateTable<K> {
    fn default() -> Self {
        RateTable {
            estimators: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> RateTable<K> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one sample of every key's cumulative counters (call every [`SAMPLE_PERIOD`]).
    ///
    /// A key seen for the first time starts from its current counters (its rates read 0 until
    /// the next sample, as a new IPVS service); a key missing from `entries` is dropped; a key
    /// whose counters went backwards was zeroed and restarts as
    /// [`Estimator::reset`].
    pub fn sample(&mut self, entries: impl IntoIterator<Item = (K, Stats)>) {
        let mut next = HashMap::with_capacity(self.estimators.len());
        for (key, stats) in entries {
            let est = match self.estimators.remove(&key) {
                Some(mut est) => {
                    if went_backwards(&est, &stats) {
                        est.reset(stats);
                    } else {
                        est.sample(stats);
                    }
                    est
                }
                None => next
                    .get(&key)
                    .copied()
                    .unwrap_or_else(|| Estimator::new(stats)),
            };
            next.insert(key, est);
        }
        self.estimators = next;
    }

    /// The rates of `key` (zero for a key not sampled yet).
    pub fn get(&self, key: &K) -> Rates {
        self.estimators
            .get(key)
            .map(Estimator::rates)
            .unwrap_or_default()
    }

    /// Restarts one key's estimator from `current` (after zeroing its counters).
    pub fn reset(&mut self, key: &K, current: Stats) {
        if let Some(est) = self.estimators.get_mut(key) {
            est.reset(current);
        }
    }

    /// Number of keys tracked.
    pub fn len(&self) -> usize {
        self.estimators.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.estimators.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conns(n: u64) -> Stats {
        Stats {
            conns: n,
            ..Stats::default()
        }
    }

    #[test]
    fn constant_conn_rate_follows_the_kernel_sequence_and_converges() {
        // 1000 conn/s = 2000 per 2 s sample; rate = 2000 << 9 = 1_024_000.
        // est1 = 0 + (1_024_000 - 0) >> 2              = 256_000 → (256_000 + 511) >> 10 = 250
        // est2 = 256_000 + (768_000 >> 2 = 192_000)   = 448_000 → (448_511) >> 10      = 437
        // est3 = 448_000 + (576_000 >> 2 = 144_000)   = 592_000 → (592_511) >> 10      = 578
        let mut e = Estimator::new(conns(5));
        assert_eq!(e.rates(), Rates::default());
        let mut n = 5;
        let mut seen = Vec::new();
        for _ in 0..3 {
            n += 2000;
            e.sample(conns(n));
            seen.push(e.rates().cps);
        }
        assert_eq!(seen, [250, 437, 578]);

        // Independently: replay the kernel's integer recurrence and compare every step.
        let mut est: i64 = 592_000;
        for _ in 0..60 {
            n += 2000;
            e.sample(conns(n));
            est += (1_024_000 - est) >> 2;
            assert_eq!(e.rates().cps, ((est + 0x1FF) >> 10) as u64);
        }
        // The fixed point: (rate - est) >> 2 == 0 ⇒ est ∈ [rate - 3, rate] ⇒ reads 1000.
        assert_eq!(e.rates().cps, 1000);
        assert_eq!(e.rates().inpps, 0);
    }

    #[test]
    fn byte_rates_use_the_five_bit_scale() {
        // 1 MB/s in, 250 kB/s out. rate_in = 2_000_000 << 4 = 32_000_000.
        // est1 =  8_000_000 → (8_000_015) >> 5 = 250_000
        // est2 = 14_000_000 → 437_500; est3 = 18_500_000 → 578_125
        let mut e = Estimator::new(Stats::default());
        let mut s = Stats::default();
        let mut seen = Vec::new();
        for _ in 0..3 {
            s.inbytes += 2_000_000;
            s.outbytes += 500_000;
            s.inpkts += 200;
            s.outpkts += 100;
            e.sample(s);
            seen.push(e.rates());
        }
        let inbps: Vec<u64> = seen.iter().map(|r| r.inbps).collect();
        let outbps: Vec<u64> = seen.iter().map(|r| r.outbps).collect();
        assert_eq!(inbps, [250_000, 437_500, 578_125]);
        assert_eq!(outbps, [62_500, 109_375, 144_531]);
        // 100 pps: rate 102_400; est 25_600 → (26_111) >> 10 = 25.
        assert_eq!(seen[0].inpps, 25);
        for _ in 0..80 {
            s.inbytes += 2_000_000;
            s.outbytes += 500_000;
            s.inpkts += 200;
            s.outpkts += 100;
            e.sample(s);
        }
        let r = e.rates();
        assert_eq!(
            (r.inbps, r.outbps, r.inpps, r.outpps),
            (1_000_000, 250_000, 100, 50)
        );
    }

    #[test]
    fn huge_deltas_saturate_instead_of_wrapping() {
        let mut e = Estimator::new(Stats::default());
        e.sample(Stats {
            conns: u64::MAX >> 1,
            inbytes: u64::MAX,
            ..Stats::default()
        });
        let r = e.rates();
        assert_eq!(r.cps, ((i64::MAX >> 2) as u64 + 0x1FF) >> 10);
        assert_eq!(r.inbps, ((i64::MAX >> 2) as u64 + 0xF) >> 5);
    }

    #[test]
    fn reset_zeroes_rates_and_restarts_from_current() {
        let mut e = Estimator::new(conns(0));
        for i in 1..=10 {
            e.sample(conns(i * 2000));
        }
        assert!(e.rates().cps > 900);
        e.reset(conns(7));
        assert_eq!(e.rates(), Rates::default());
        e.sample(conns(7 + 2000));
        assert_eq!(e.rates().cps, 250);
    }

    #[test]
    fn table_tracks_keys_appearing_vanishing_and_zeroed() {
        let mut t: RateTable<(&str, Option<u16>)> = RateTable::new();
        let svc = ("svc", None);
        let rs = ("svc", Some(80));
        t.sample([(svc, conns(100))]);
        assert_eq!(t.get(&svc).cps, 0);
        t.sample([(svc, conns(2100))]);
        assert_eq!(t.get(&svc).cps, 250);

        // A server appearing later starts from its current counters, not from 0.
        t.sample([(svc, conns(4100)), (rs, conns(1_000_000))]);
        assert_eq!(t.get(&svc).cps, 437);
        assert_eq!(t.get(&rs).cps, 0);
        t.sample([(svc, conns(6100)), (rs, conns(1_002_000))]);
        assert_eq!(t.get(&rs).cps, 250);

        // Zeroed counters (they went backwards) reset the estimate.
        t.sample([(svc, conns(0)), (rs, conns(1_004_000))]);
        assert_eq!(t.get(&svc), Rates::default());
        assert_eq!(t.get(&rs).cps, 437);
        t.sample([(svc, conns(2000)), (rs, conns(1_006_000))]);
        assert_eq!(t.get(&svc).cps, 250);

        // A key not sampled any more is dropped; coming back it starts over.
        t.sample([(svc, conns(4000))]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(&rs), Rates::default());
        t.sample([(svc, conns(6000)), (rs, conns(1_008_000))]);
        assert_eq!(t.get(&rs).cps, 0);
    }
}
