//! Weighted least connection (`ip_vs_wlc.c`), the IPVS default.
//!
//! Load = overhead / weight with overhead = 256·active + inactive, compared by
//! cross-multiplication (`loh·dw > doh·lw` replaces). The first server that is not overloaded
//! and has weight > 0 starts the search; later servers are skipped only when overloaded, which
//! is the same as skipping weight 0 too since a weight-0 server can never be strictly lighter.
//! Ties keep the earlier server in list order. No state.

use super::{DestLoad, weighted_least};

/// Weighted least-connection scheduler (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct WeightedLeastConnection;

impl WeightedLeastConnection {
    /// Picks the server with the least overhead per weight (`ip_vs_wlc_schedule`).
    #[inline]
    pub fn pick(&self, dests: &[DestLoad]) -> Option<usize> {
        weighted_least(dests, DestLoad::overhead)
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
            ("all idle: the first", &[d(1, 0, 0), d(3, 0, 0)], Some(0)),
            (
                "256/1 vs 512/3: the heavier weight wins",
                &[d(1, 1, 0), d(3, 2, 0)],
                Some(1),
            ),
            (
                "256/1 vs 768/3 tie: the earlier stays",
                &[d(1, 1, 0), d(3, 3, 0)],
                Some(0),
            ),
            (
                "inactive count: 10/1 vs 21/2",
                &[d(1, 0, 10), d(2, 0, 21)],
                Some(0),
            ),
            (
                "inactive count: 10/1 vs 19/2",
                &[d(1, 0, 10), d(2, 0, 19)],
                Some(1),
            ),
            (
                "weight 0 first is skipped",
                &[d(0, 0, 0), d(1, 9, 9), d(2, 9, 9)],
                Some(2),
            ),
            (
                "weight 0 later never wins even idle",
                &[d(1, 9, 0), d(0, 0, 0)],
                Some(0),
            ),
            ("only weight 0", &[d(0, 0, 0)], None),
            (
                "three-way: 512/2, 300/1, 700/3 → 700/3 (233)",
                &[d(2, 2, 0), d(1, 1, 44), d(3, 2, 188)],
                Some(2),
            ),
            ("empty", &[], None),
        ];
        for (what, dests, want) in table {
            assert_eq!(WeightedLeastConnection.pick(dests), *want, "{what}");
        }
    }

    #[test]
    fn overloaded_servers_are_skipped() {
        let mut dests = [d(1, 0, 0), d(1, 5, 0), d(5, 5, 0)];
        dests[0].overloaded = true;
        assert_eq!(WeightedLeastConnection.pick(&dests), Some(2));
        dests[2].overloaded = true;
        assert_eq!(WeightedLeastConnection.pick(&dests), Some(1));
        dests[1].overloaded = true;
        assert_eq!(WeightedLeastConnection.pick(&dests), None);
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let dests = [
            d(u32::MAX, u32::MAX, u32::MAX),
            d(u32::MAX - 1, u32::MAX, 0),
        ];
        assert_eq!(WeightedLeastConnection.pick(&dests), Some(1));
    }
}
