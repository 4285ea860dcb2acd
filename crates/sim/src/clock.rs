//! Each simulated node's clock: a monotonic clock that starts anywhere at
//! boot and runs at its own rate, within the drift bound the core assumes.

use baton_core::Time;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    boot_true_us: u64,
    boot_local_us: u64,
    /// The clock runs at `1 + rate_ppm / 1e6` of true time.
    rate_ppm: i64,
}

const MILLION: i128 = 1_000_000;

impl Clock {
    pub fn new(boot_true_us: u64, boot_local_us: u64, rate_ppm: i64) -> Self {
        assert!(rate_ppm.abs() < 100_000);
        Clock { boot_true_us, boot_local_us, rate_ppm }
    }

    pub fn local(&self, true_us: u64) -> Time {
        let dt = i128::from(true_us.saturating_sub(self.boot_true_us));
        let dl = dt * (MILLION + i128::from(self.rate_ppm)) / MILLION;
        Time(self.boot_local_us + dl as u64)
    }

    /// The first true instant at which the local clock reads `local` or more.
    pub fn true_of(&self, local: Time) -> u64 {
        let dl = i128::from(local.0.saturating_sub(self.boot_local_us));
        let rate = MILLION + i128::from(self.rate_ppm);
        let dt = (dl * MILLION + rate - 1) / rate;
        self.boot_true_us + dt as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_true_time_round_trip_at_any_rate() {
        for rate in [-9_000, 0, 7_321] {
            let c = Clock::new(5_000, 1_000_000, rate);
            for t in [5_000, 5_001, 77_777, 10_000_000] {
                let l = c.local(t);
                assert!(c.true_of(l) <= t, "rate {rate}: {t}");
                assert!(c.local(c.true_of(l)) >= l);
            }
        }
    }
}
