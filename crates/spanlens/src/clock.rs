//! The wall clock spans are stamped with (read twice per span).
//!
//! `clock_gettime` through the vDSO costs about 34 ns here, and it orders itself after every
//! earlier instruction, so it also waits for the span's pending memory traffic: a quarter of a
//! span's time in a profile of the span loop. Where the kernel itself keeps time with the CPU's
//! time-stamp counter (its clocksource is `tsc`, which the kernel only picks when the counter is
//! invariant and in step across cores), the SDK reads that counter and converts it with a scale
//! and an offset taken from the system clock. The scale is measured against `CLOCK_MONOTONIC`
//! over an ever longer baseline; the offset is re-read from `CLOCK_REALTIME` every eighth of
//! that baseline (5 ms at first, once a second after eight seconds), so a step of the system
//! clock shows within a second. Elsewhere (other CPUs and clocksources, a process that may not
//! read the counter, the first 20 ms of a process) the SDK reads the system clock.

use spanlens_core::Timestamp;

/// The wall clock, ns since the Unix epoch (0 before it).
#[inline]
pub(crate) fn now() -> Timestamp {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if let Some(t) = tsc::now() {
        return t;
    }
    system_now()
}

/// The system's wall clock. On Unix it is read straight from `clock_gettime`:
/// `SystemTime::duration_since` returns its result through memory written in narrow pieces and
/// read back whole, a store-forwarding stall that cost more than the read itself in a profile.
#[cfg(unix)]
fn system_now() -> Timestamp {
    match read_clock(libc::CLOCK_REALTIME) {
        Some(ns) => Timestamp(ns),
        None => portable_now(),
    }
}

#[cfg(not(unix))]
fn system_now() -> Timestamp {
    portable_now()
}

/// `clock_id` in ns (`None` if it cannot be read or is before its epoch).
#[cfg(unix)]
fn read_clock(clock_id: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call to fill.
    if unsafe { libc::clock_gettime(clock_id, &mut ts) } != 0 {
        return None;
    }
    let (s, n) = (
        u64::try_from(ts.tv_sec).ok()?,
        u64::try_from(ts.tv_nsec).ok()?,
    );
    Some(s.saturating_mul(1_000_000_000).saturating_add(n))
}

/// [`now`] through `std`.
fn portable_now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_secs() * 1_000_000_000 + u64::from(d.subsec_nanos()))
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod tsc {
    use super::{read_clock, Timestamp};
    use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, Ordering};

    /// Baseline the first scale is measured over.
    const FIRST_BASELINE_NS: u64 = 20_000_000;
    /// Longest time converted from one anchor before the offset is re-read.
    const MAX_LIFETIME_NS: u64 = 1_000_000_000;
    /// Shortest: while the scale's baseline is short its error is largest, so an anchor is
    /// trusted for an eighth of the baseline, within these bounds (an error of 0.04% on a
    /// 20 ms baseline is 2 µs over 5 ms, and shrinks as the baseline grows).
    const MIN_LIFETIME_NS: u64 = 5_000_000;
    /// Most ticks allowed between the two counter reads around the system-clock reads (a few
    /// µs; they take a few hundred ticks); more means the thread was interrupted there and the
    /// pair is not trusted.
    const PAIR_TICKS: u64 = 20_000;

    const UNKNOWN: u8 = 0;
    const USABLE: u8 = 1;
    const UNUSABLE: u8 = 2;
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Calibration, published under a sequence lock (odd while written) so that readers, on
    /// the hot path, take no lock and write nothing.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    static BASE_TICKS: AtomicU64 = AtomicU64::new(0);
    static BASE_NS: AtomicU64 = AtomicU64::new(0);
    /// ns per tick in 32.32 fixed point; 0 until measured.
    static SCALE: AtomicU64 = AtomicU64::new(0);
    /// How long after its anchor the counter is converted before the offset is re-read.
    static LIFETIME_NS: AtomicU64 = AtomicU64::new(0);

    /// The first (monotonic ns, ticks) pair: the scale's baseline starts there.
    static FIRST_MONO: AtomicU64 = AtomicU64::new(0);
    static FIRST_TICKS: AtomicU64 = AtomicU64::new(0);
    /// Held by the one thread updating the calibration.
    static UPDATING: AtomicBool = AtomicBool::new(false);

    #[inline(always)]
    fn ticks() -> u64 {
        // SAFETY: `rdtsc` has no preconditions; `usable` checked that the process may run it.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    #[inline]
    pub(super) fn now() -> Option<Timestamp> {
        let seq = SEQ.load(Ordering::Acquire);
        let scale = SCALE.load(Ordering::Relaxed);
        let base_ticks = BASE_TICKS.load(Ordering::Relaxed);
        let base_ns = BASE_NS.load(Ordering::Relaxed);
        let lifetime = LIFETIME_NS.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let consistent = seq & 1 == 0 && SEQ.load(Ordering::Relaxed) == seq;
        if scale != 0 && consistent {
            let t = ticks();
            if let Some(dt) = t.checked_sub(base_ticks) {
                let ns = ((u128::from(dt) * u128::from(scale)) >> 32) as u64;
                if ns < lifetime {
                    return Some(Timestamp(base_ns + ns));
                }
            }
        }
        slow()
    }

    /// Called when no calibration applies: reads the system clock and, when it is this thread's
    /// turn, measures or re-anchors the calibration. `None` where the counter is not used.
    #[cold]
    fn slow() -> Option<Timestamp> {
        if !usable() {
            return None;
        }
        let (real, mono, t) = read_pair()?;
        let first = FIRST_MONO.load(Ordering::Acquire);
        let due = first == 0 || mono.saturating_sub(first) >= FIRST_BASELINE_NS;
        if due
            && UPDATING
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            update(real, mono, t);
            UPDATING.store(false, Ordering::Release);
        }
        Some(Timestamp(real))
    }

    /// Records the first pair, or measures the scale over the baseline so far and publishes it
    /// with a new anchor. Only one thread runs this at a time (`UPDATING`).
    fn update(real: u64, mono: u64, t: u64) {
        let first = FIRST_MONO.load(Ordering::Acquire);
        if first == 0 {
            FIRST_TICKS.store(t, Ordering::Relaxed);
            FIRST_MONO.store(mono, Ordering::Release);
            return;
        }
        let first_ticks = FIRST_TICKS.load(Ordering::Relaxed);
        let (Some(dns), Some(dticks)) = (mono.checked_sub(first), t.checked_sub(first_ticks))
        else {
            // The counter went back (as it may across a suspend): the baseline starts again
            // here, and the scale measured so far is anchored on this pair meanwhile.
            FIRST_TICKS.store(t, Ordering::Relaxed);
            FIRST_MONO.store(mono, Ordering::Release);
            let scale = SCALE.load(Ordering::Relaxed);
            if scale != 0 {
                publish(t, real, scale, MIN_LIFETIME_NS);
            }
            return;
        };
        if dticks == 0 {
            return;
        }
        let scale = ((u128::from(dns) << 32) / u128::from(dticks)) as u64;
        // A counter between 100 MHz and 16 GHz; anything else means it is not what it seems.
        if !(1u64 << 32 >> 4..=10u64 << 32).contains(&scale) {
            STATE.store(UNUSABLE, Ordering::Relaxed);
            return;
        }
        publish(
            t,
            real,
            scale,
            (dns / 8).clamp(MIN_LIFETIME_NS, MAX_LIFETIME_NS),
        );
    }

    /// Publishes an anchor and scale under the sequence lock (by the one updating thread).
    fn publish(ticks: u64, real: u64, scale: u64, lifetime: u64) {
        let seq = SEQ.load(Ordering::Relaxed);
        SEQ.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        BASE_TICKS.store(ticks, Ordering::Relaxed);
        BASE_NS.store(real, Ordering::Relaxed);
        SCALE.store(scale, Ordering::Relaxed);
        LIFETIME_NS.store(lifetime, Ordering::Relaxed);
        SEQ.store(seq + 2, Ordering::Release);
    }

    /// The system clock (real and monotonic) with the counter read at the same moment: the
    /// counter's midpoint around the two reads, if nothing interrupted them.
    fn read_pair() -> Option<(u64, u64, u64)> {
        for _ in 0..8 {
            let before = ticks();
            let real = read_clock(libc::CLOCK_REALTIME)?;
            let mono = read_clock(libc::CLOCK_MONOTONIC)?;
            let after = ticks();
            if after >= before && after - before <= PAIR_TICKS {
                return Some((real, mono, before + (after - before) / 2));
            }
        }
        None
    }

    /// Whether the counter may be used: decided once per process.
    fn usable() -> bool {
        match STATE.load(Ordering::Relaxed) {
            USABLE => true,
            UNUSABLE => false,
            _ => {
                let ok = kernel_uses_tsc() && counter_allowed();
                STATE.store(if ok { USABLE } else { UNUSABLE }, Ordering::Relaxed);
                ok
            }
        }
    }

    /// True when the kernel's own clocksource is the counter: it then vouches that the counter
    /// runs at a constant rate and agrees across cores.
    fn kernel_uses_tsc() -> bool {
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .is_ok_and(|s| s.trim() == "tsc")
    }

    /// False when the process was set to fault on reading the counter (`PR_SET_TSC`).
    fn counter_allowed() -> bool {
        let mut mode: libc::c_int = 0;
        // SAFETY: PR_GET_TSC writes one int through the pointer given, which is valid.
        let r = unsafe { libc::prctl(libc::PR_GET_TSC, &mut mode as *mut libc::c_int) };
        r == 0 && mode == libc::PR_TSC_ENABLE
    }

    #[cfg(test)]
    pub(super) fn usable_here() -> bool {
        usable()
    }

    #[cfg(test)]
    pub(super) fn calibrated() -> bool {
        SCALE.load(Ordering::Relaxed) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the clock for `ms` milliseconds, checking that it never runs backwards by more
    /// than a microsecond and stays within a millisecond of the system clock.
    fn follow_for(ms: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
        let mut last = now().0;
        while std::time::Instant::now() < until {
            let sys_before = system_now().0;
            let t = now().0;
            let sys_after = system_now().0;
            assert!(t + 1_000 >= last, "clock ran backwards: {last} then {t}");
            assert!(
                t + 1_000_000 >= sys_before && t <= sys_after + 1_000_000,
                "clock {t} is not within 1 ms of the system's {sys_before}..{sys_after}"
            );
            last = t;
        }
    }

    #[test]
    fn the_clock_follows_the_system_clock() {
        follow_for(300);
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if tsc::usable_here() {
            assert!(tsc::calibrated(), "the counter was never calibrated");
        }
        // Past a re-anchor too.
        follow_for(1_300);
    }
}
