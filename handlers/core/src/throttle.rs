//! The login throttle as pure rules over an account's attempt counter; every store applies them in one
//! atomic step (a SQLite transaction, a DynamoDB conditional write), so concurrency cannot change
//! the count.
//!
//! An attempt is *reserved* before its password is judged, and the reservation is what counts:
//! - the first `free_attempts` reservations are admitted at once;
//! - past them, a reservation is admitted only when the window is closed, and it closes the window
//!   for everyone else until its own judgement is settled ([`PENDING_JUDGEMENT_MS`] at most, so a
//!   request that dies mid-judgement does not lock the account for longer);
//! - a failed judgement settles the window: the `k`-th attempt past the free ones (k = 0, 1, ...)
//!   opens a window of 2^k seconds, capped at `max_delay_secs`; a successful one resets the counter;
//! - after `decay_secs` without an attempt (and with no window open), old attempts no longer count.
//!
//! So, under any concurrency, at most `free_attempts` passwords are judged before the first window,
//! and one per window after it.

/// How long a reservation past the free attempts holds the window closed while its password is
/// judged. A judgement takes well under a second; this only bounds the damage of a request that
/// never settles (a Lambda timeout, a crash).
pub const PENDING_JUDGEMENT_MS: i64 = 60_000;

/// An account's attempt counter, as stored on the user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptCounter {
    /// Attempts reserved since the last success (or since the counter decayed).
    pub attempts: u32,
    /// Reservations past the free attempts are refused until this instant (0: no window).
    pub locked_until_ms: i64,
    /// When the latest attempt was reserved (0: never).
    pub last_attempt_ms: i64,
}

/// How failed logins slow an account down (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginThrottle {
    pub free_attempts: u32,
    pub max_delay_secs: u64,
    pub decay_secs: u64,
}

impl LoginThrottle {
    /// Whether the counter's attempts no longer count at `now_ms`.
    pub fn decayed(&self, counter: &AttemptCounter, now_ms: i64) -> bool {
        counter.attempts == 0
            || (now_ms >= counter.locked_until_ms
                && now_ms.saturating_sub(counter.last_attempt_ms)
                    >= (self.decay_secs as i64).saturating_mul(1000))
    }

    /// The counter after reserving one attempt at `now_ms`, or `None` if the reservation is refused.
    pub fn reserve(&self, counter: &AttemptCounter, now_ms: i64) -> Option<AttemptCounter> {
        let previous = if self.decayed(counter, now_ms) {
            0
        } else {
            counter.attempts
        };
        if previous >= self.free_attempts && now_ms < counter.locked_until_ms {
            return None;
        }
        let attempts = previous.saturating_add(1);
        let locked_until_ms = if attempts >= self.free_attempts {
            now_ms.saturating_add(PENDING_JUDGEMENT_MS)
        } else {
            0
        };
        Some(AttemptCounter {
            attempts,
            locked_until_ms,
            last_attempt_ms: now_ms,
        })
    }

    /// The window a failed judgement of the reservation `reserved` leaves (0: none).
    pub fn window_after_failure(&self, reserved: &AttemptCounter) -> i64 {
        if reserved.attempts < self.free_attempts {
            return 0;
        }
        let exponent = (reserved.attempts - self.free_attempts).min(30);
        let secs = (1u64 << exponent).min(self.max_delay_secs);
        reserved.last_attempt_ms.saturating_add(secs as i64 * 1000)
    }
}

/// Settling: the counter's window is replaced only if the counter is still the reservation it was
/// decided on (no later reservation, no success since); otherwise the later event decides.
pub fn settle(
    counter: &AttemptCounter,
    reserved: &AttemptCounter,
    locked_until_ms: i64,
) -> Option<AttemptCounter> {
    (counter.attempts == reserved.attempts && counter.last_attempt_ms == reserved.last_attempt_ms)
        .then_some(AttemptCounter {
            locked_until_ms,
            ..*counter
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: LoginThrottle = LoginThrottle {
        free_attempts: 5,
        max_delay_secs: 900,
        decay_secs: 3600,
    };

    fn fail(counter: AttemptCounter, now: i64) -> Option<AttemptCounter> {
        let reserved = T.reserve(&counter, now)?;
        settle(&reserved, &reserved, T.window_after_failure(&reserved))
    }

    #[test]
    fn free_attempts_then_one_per_growing_window() {
        let mut c = AttemptCounter::default();
        for i in 0..5 {
            c = fail(c, 1_000 + i).expect("free attempt");
        }
        assert_eq!(c.attempts, 5);
        // The fifth failure opened a 1 s window from its reservation.
        assert_eq!(c.locked_until_ms, 1_004 + 1_000);
        assert!(T.reserve(&c, 2_003).is_none());
        c = fail(c, 2_004).expect("window closed");
        assert_eq!(c.locked_until_ms, 2_004 + 2_000);
        assert!(T.reserve(&c, 4_003).is_none());
        c = fail(c, 4_004).expect("window closed");
        assert_eq!(c.locked_until_ms, 4_004 + 4_000);
    }

    #[test]
    fn windows_are_capped() {
        let c = AttemptCounter {
            attempts: 40,
            locked_until_ms: 0,
            last_attempt_ms: 10,
        };
        let reserved = T.reserve(&c, 20).unwrap();
        assert_eq!(T.window_after_failure(&reserved), 20 + 900_000);
        let c = AttemptCounter {
            attempts: u32::MAX,
            ..c
        };
        let reserved = T.reserve(&c, 20).unwrap();
        assert_eq!(reserved.attempts, u32::MAX);
        assert_eq!(T.window_after_failure(&reserved), 20 + 900_000);
    }

    #[test]
    fn a_reservation_past_the_free_attempts_holds_the_window_until_settled() {
        let mut c = AttemptCounter::default();
        for i in 0..4 {
            c = T.reserve(&c, i).unwrap();
            assert_eq!(c.locked_until_ms, 0, "free attempts leave no window");
        }
        let fifth = T.reserve(&c, 10).unwrap();
        assert_eq!(fifth.locked_until_ms, 10 + PENDING_JUDGEMENT_MS);
        assert!(
            T.reserve(&fifth, 11).is_none(),
            "judging the fifth: refused"
        );
        assert!(
            T.reserve(&fifth, 10 + PENDING_JUDGEMENT_MS).is_some(),
            "an unsettled reservation holds no longer than the pending bound"
        );
    }

    #[test]
    fn settling_applies_only_to_the_reservation_it_was_decided_on() {
        let c = AttemptCounter::default();
        let first = T.reserve(&c, 1).unwrap();
        let second = T.reserve(&first, 2).unwrap();
        assert_eq!(settle(&second, &first, 99), None);
        assert_eq!(settle(&second, &second, 99).unwrap().locked_until_ms, 99);
        assert_eq!(settle(&AttemptCounter::default(), &first, 99), None);
    }

    #[test]
    fn attempts_decay_after_a_quiet_period_but_not_inside_a_window() {
        let c = AttemptCounter {
            attempts: 30,
            locked_until_ms: 5_000_000,
            last_attempt_ms: 1_000,
        };
        assert!(!T.decayed(&c, 4_999_999), "a window is never cut short");
        assert!(T.decayed(&c, 5_000_000));
        let c = AttemptCounter {
            locked_until_ms: 2_000,
            ..c
        };
        assert!(!T.decayed(&c, 1_000 + 3_599_999));
        assert!(T.decayed(&c, 1_000 + 3_600_000));
        assert_eq!(T.reserve(&c, 1_000 + 3_600_000).unwrap().attempts, 1);
    }
}
