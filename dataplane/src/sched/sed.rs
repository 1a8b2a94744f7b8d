//! Shortest expected delay (`ip_vs_sed.c`).
//!
//! Expected delay = (active + 1) / weight; inactive connections are ignored. Compared by
//! cross-multiplication, search shaped like wlc's: the first server that is not overloaded with
//! weight > 0 starts, a later non-overloaded server replaces it only when strictly better, so
//! ties keep the earlier server. No state.

use super::{DestLoad, weighted_least};

/// Shortest-expected-delay scheduler (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct ShortestExpectedDelay;

/// `ip_vs_sed_dest_overhead`: active + 1.
#[inline]
pub(super) fn sed_overhead(d: &DestLoad) -> u64 {
    u64::from(d.active) + 1
}

impl ShortestExpectedDelay {
    /// Picks the server with the least (active + 1) / weight (`ip_vs_sed_schedule`).
    #[inline]
    pub fn pick(&self, dests: &[DestLoad]) -> Option<usize> {
        weighted_least(dests, sed_overhead)
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
                "idle: 1/1 vs 1/3, the faster server",
                &[d(1, 0, 0), d(3, 0, 0)],
                Some(1),
            ),
            (
                "1/1 vs 3/3 tie: the earlier",
                &[d(1, 0, 0), d(3, 2, 0)],
                Some(0),
            ),
            ("2/1 vs 4/3: the second", &[d(1, 1, 0), d(3, 3, 0)], Some(1)),
            ("inactive is ignored", &[d(1, 0, 1000), d(1, 1, 0)], Some(0)),
            (
                "idle, 1/1 vs 1/2: the heavier (wlc would keep the first, 0 vs 0)",
                &[d(1, 0, 0), d(2, 0, 0)],
                Some(1),
            ),
            ("weight 0 skipped", &[d(0, 0, 0), d(1, 4, 0)], Some(1)),
            ("only weight 0", &[d(0, 0, 0)], None),
            ("empty", &[], None),
        ];
        for (what, dests, want) in table {
            assert_eq!(ShortestExpectedDelay.pick(dests), *want, "{what}");
        }
    }

    #[test]
    fn overloaded_servers_are_skipped() {
        let mut dests = [d(5, 0, 0), d(1, 0, 0)];
        dests[0].overloaded = true;
        assert_eq!(ShortestExpectedDelay.pick(&dests), Some(1));
        dests[1].overloaded = true;
        assert_eq!(ShortestExpectedDelay.pick(&dests), None);
    }
}
