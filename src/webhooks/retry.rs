//! When a failed delivery is tried again: 5 s, 30 s, 2 min, 10 min, 30 min,
//! 2 h, 5 h, then every 10 h, each with up to a tenth more of jitter (so
//! that deliveries that failed together do not all come back at once), for
//! at least three days from the first attempt; then it is given up.

/// The waits after the first failures, in milliseconds.
pub const SCHEDULE_MS: [i64; 7] = [
    5_000, 30_000, 120_000, 600_000, 1_800_000, 7_200_000, 18_000_000,
];
/// The wait after every later failure.
pub const THEN_EVERY_MS: i64 = 36_000_000;
/// A delivery still failing this long after its first attempt is given up.
pub const GIVE_UP_AFTER_MS: i64 = 3 * 86_400_000;

/// After `failures` failed attempts, the first at `first_attempt_at` and
/// the last sent at `sent_at` and answered (or timed out) at `answered_at`:
/// when to try `event_id` again, the wait counted from the answer; `None`:
/// give up. The three days are counted up to when the last attempt was
/// sent, so that the endpoint itself sees attempts three days apart before
/// they stop: an answer that came late must not shorten them.
pub fn next_attempt(
    failures: i64,
    first_attempt_at: i64,
    sent_at: i64,
    answered_at: i64,
    event_id: &str,
) -> Option<i64> {
    if sent_at.saturating_sub(first_attempt_at) >= GIVE_UP_AFTER_MS {
        return None;
    }
    let index = usize::try_from(failures.saturating_sub(1)).unwrap_or(usize::MAX);
    let wait = SCHEDULE_MS.get(index).copied().unwrap_or(THEN_EVERY_MS);
    Some(
        answered_at
            .saturating_add(wait)
            .saturating_add(jitter(wait, event_id, failures)),
    )
}

/// Up to a tenth of `wait`, the same for the same event and attempt (FNV-1a
/// of both): spread, yet repeatable in tests.
fn jitter(wait: i64, event_id: &str, failures: i64) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in event_id.bytes().chain(failures.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let tenth = u64::try_from(wait / 10).unwrap_or(0);
    i64::try_from(hash.checked_rem(tenth.saturating_add(1)).unwrap_or(0)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retry_comes_within_ten_seconds() {
        let next = next_attempt(1, 0, 0, 0, "evt_a").unwrap();
        assert!((5_000..=5_500).contains(&next), "{next}");
    }

    #[test]
    fn it_backs_off_then_retries_every_ten_hours() {
        let waits: Vec<i64> = (1..=9)
            .map(|n| next_attempt(n, 0, 0, 0, "evt_a").unwrap())
            .collect();
        for (wait, base) in waits.iter().zip(
            SCHEDULE_MS
                .iter()
                .chain([THEN_EVERY_MS, THEN_EVERY_MS].iter()),
        ) {
            assert!(
                *wait >= *base && *wait <= base + base / 10,
                "{wait} for {base}"
            );
        }
    }

    #[test]
    fn it_tries_for_three_days_then_gives_up() {
        // Each attempt made the moment it is due: the last one at or after
        // three days fails and gives up.
        let (mut now, mut failures) = (0i64, 0i64);
        loop {
            failures += 1;
            match next_attempt(failures, 0, now, now, "evt_b") {
                Some(next) => now = next,
                None => break,
            }
        }
        assert!(now >= GIVE_UP_AFTER_MS, "gave up after {now} ms");
        assert!(now < GIVE_UP_AFTER_MS + THEN_EVERY_MS * 11 / 10);
        // Eight attempts in the first 8 hours, then one every 10 hours
        // (and their jitter) until three days have passed.
        assert_eq!(failures, 14);
    }

    #[test]
    fn a_late_answer_does_not_shorten_the_three_days() {
        // Sent a minute before three days were up, refused ten hours later:
        // tried once more, ten hours after the answer.
        let sent = GIVE_UP_AFTER_MS - 60_000;
        let answered = sent + THEN_EVERY_MS;
        let next = next_attempt(9, 0, sent, answered, "evt_c").unwrap();
        assert!(next >= answered + THEN_EVERY_MS, "{next}");
        // Sent at three days: given up, whenever the answer came.
        assert_eq!(
            next_attempt(10, 0, GIVE_UP_AFTER_MS, GIVE_UP_AFTER_MS, "evt_c"),
            None
        );
    }
}
