//! Never queue (`ip_vs_nq.c`).
//!
//! Walks the list skipping overloaded and weight-0 servers; the first server with no active
//! connection wins at once. Otherwise the result is sed's: least (active + 1) / weight by
//! cross-multiplication, ties keeping the earlier server. No state.

use super::sed::sed_overhead;
use super::{DestLoad, less_loaded};

/// Never-queue scheduler (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverQueue;

impl NeverQueue {
    /// Picks the first idle eligible server, else the sed minimum (`ip_vs_nq_schedule`).
    #[inline]
    pub fn pick(&self, dests: &[DestLoad]) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.available() {
                continue;
            }
            let doh = sed_overhead(d);
            if d.active == 0 {
                return Some(i);
            }
            let better =
                least.is_none_or(|(l, loh)| less_loaded(doh, d.weight, loh, dests[l].weight));
            if better {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::d;

    /// Conformance table: (weight, active, inactive) per server → IPVS's pick.
    #[test]
    fn ipvs_picks() {
        let table: &[(&str, &[DestLoad], Option<usize>)] = &[
            (
                "an idle slow server beats a busy fast one",
                &[d(10, 1, 0), d(1, 0, 0)],
                Some(1),
            ),
            (
                "the first idle wins, not the heaviest idle",
                &[d(1, 0, 0), d(9, 0, 0)],
                Some(0),
            ),
            (
                "idle means no active; inactive does not count",
                &[d(5, 1, 0), d(1, 0, 500)],
                Some(1),
            ),
            (
                "no idle server: sed, 2/1 vs 3/3 → the second",
                &[d(1, 1, 0), d(3, 2, 0)],
                Some(1),
            ),
            (
                "no idle server: sed tie 2/1 vs 4/2 keeps the earlier",
                &[d(1, 1, 0), d(2, 3, 0)],
                Some(0),
            ),
            (
                "an idle weight-0 server is skipped",
                &[d(0, 0, 0), d(1, 3, 0)],
                Some(1),
            ),
            ("only weight 0", &[d(0, 0, 0)], None),
            ("empty", &[], None),
        ];
        for (what, dests, want) in table {
            assert_eq!(NeverQueue.pick(dests), *want, "{what}");
        }
    }

    #[test]
    fn an_idle_overloaded_server_is_skipped() {
        let mut dests = [d(1, 0, 0), d(1, 2, 0), d(2, 2, 0)];
        dests[0].overloaded = true;
        assert_eq!(NeverQueue.pick(&dests), Some(2), "3/2 beats 3/1");
        dests[1].overloaded = true;
        dests[2].overloaded = true;
        assert_eq!(NeverQueue.pick(&dests), None);
    }
}
