//! Weighted round robin (`ip_vs_wrr.c`, the interleaved form of current kernels).
//!
//! State: the last chosen position `cl`, the current weight `cw`, the step `di` (gcd of the
//! positive weights) and `mw` (max weight − (di − 1)). A pick walks on from `cl` taking the
//! first server that is not overloaded with weight ≥ cw; at the end of the list cw drops by di
//! and wraps to mw when it reaches 0. So weights 4,3,2 give A A B A B C A B C and 3,2,1 give
//! A A B A B C. A change of the server list or weights restarts at the head, keeping cw where
//! the kernel keeps it (`ip_vs_wrr_dest_changed`).

use super::DestLoad;

/// Weighted round-robin state.
#[derive(Debug, Clone)]
pub struct WeightedRoundRobin {
    /// Last pick; `None` is the list head.
    cl: Option<usize>,
    cw: i64,
    mw: i64,
    di: i64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn gcd_weight(dests: &[DestLoad]) -> i64 {
    let g = dests
        .iter()
        .filter(|d| d.weight > 0)
        .fold(0u64, |g, d| gcd(g, u64::from(d.weight)));
    if g == 0 { 1 } else { g as i64 }
}

fn max_weight(dests: &[DestLoad]) -> i64 {
    dests.iter().map(|d| i64::from(d.weight)).max().unwrap_or(0)
}

impl WeightedRoundRobin {
    /// State for a fresh service (`ip_vs_wrr_init_svc`).
    pub fn new(dests: &[DestLoad]) -> Self {
        let di = gcd_weight(dests);
        let mw = max_weight(dests) - (di - 1);
        Self {
            cl: None,
            cw: mw,
            mw,
            di,
        }
    }

    /// Servers or weights changed (`ip_vs_wrr_dest_changed`).
    pub fn update(&mut self, dests: &[DestLoad]) {
        self.cl = None;
        self.di = gcd_weight(dests);
        self.mw = max_weight(dests) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    /// Picks the next server (`ip_vs_wrr_schedule`).
    #[inline]
    pub fn pick(&mut self, dests: &[DestLoad]) -> Option<usize> {
        if self.mw <= 0 || dests.is_empty() {
            return None;
        }
        let n = dests.len();
        let last = self.cl.filter(|&l| l < n);
        let mut dest = last;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            for (i, d) in dests.iter().enumerate().skip(dest.map_or(0, |d| d + 1)) {
                if !d.overloaded && i64::from(d.weight) >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            dest = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // Stop if the last pass (weight >= 1) already covered every server.
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The first weight >= 1 traversal only covered servers after `last`; now
                // cover those up to it.
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dests(weights: &[u32]) -> Vec<DestLoad> {
        weights.iter().map(|&w| DestLoad::with_weight(w)).collect()
    }

    fn seq(weights: &[u32], n: usize) -> String {
        let d = dests(weights);
        let mut s = WeightedRoundRobin::new(&d);
        (0..n)
            .map(|_| s.pick(&d).map_or('-', |i| (b'A' + i as u8) as char))
            .collect()
    }

    /// Conformance table: sequences the kernel's ip_vs_wrr produces.
    #[test]
    fn ipvs_sequences() {
        let table: &[(&[u32], &str)] = &[
            (&[3, 2, 1], "AABABCAABABC"),
            (&[4, 3, 2], "AABABCABCAABABCABC"),
            (&[1, 1, 1], "ABCABC"),
            (&[2, 2], "ABAB"),            // gcd 2: mw = 1, every pass takes both
            (&[4, 2], "AABAAB"),          // gcd 2: di 2, mw 3
            (&[5, 0, 1], "AAAAACAAAAAC"), // weight 0 never chosen
            (&[1, 3], "BBABBBAB"),
            (&[0, 0], "----"),
            (&[], "--"),
        ];
        for (weights, want) in table {
            assert_eq!(&seq(weights, want.len()), want, "weights {weights:?}");
        }
    }

    #[test]
    fn proportions_follow_weights() {
        let s = seq(&[5, 3, 2], 100);
        assert_eq!(s.matches('A').count(), 50);
        assert_eq!(s.matches('B').count(), 30);
        assert_eq!(s.matches('C').count(), 20);
    }

    #[test]
    fn overloaded_servers_are_skipped() {
        let mut d = dests(&[3, 2, 1]);
        d[0].overloaded = true;
        let mut s = WeightedRoundRobin::new(&d);
        let picks: Vec<_> = (0..6).map(|_| s.pick(&d)).collect();
        assert_eq!(picks, [1, 1, 2, 1, 1, 2].map(Some).to_vec());
    }

    #[test]
    fn all_overloaded_gives_none_and_recovers() {
        let mut d = dests(&[2, 1]);
        let mut s = WeightedRoundRobin::new(&d);
        assert_eq!(s.pick(&d), Some(0));
        d[0].overloaded = true;
        d[1].overloaded = true;
        assert_eq!(s.pick(&d), None);
        d[1].overloaded = false;
        assert_eq!(s.pick(&d), Some(1));
    }

    #[test]
    fn weight_change_restarts_at_the_head() {
        let mut d = dests(&[3, 2, 1]);
        let mut s = WeightedRoundRobin::new(&d);
        assert_eq!(s.pick(&d), Some(0));
        assert_eq!(s.pick(&d), Some(0));
        assert_eq!(s.pick(&d), Some(1)); // cw = 2 now
        d[2].weight = 2;
        s.update(&d);
        // cw stays 2 (<= mw 3): from the head, weight >= 2 → A, B, C, then cw 1 → A B C.
        let picks: Vec<_> = (0..6).map(|_| s.pick(&d).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }
}
