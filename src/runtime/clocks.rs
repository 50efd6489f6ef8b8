//! Several clocks advanced by Brian2's rule (`Network._nextclocks`): the clock with the
//! smallest `t` leads, and every clock within `epsilon_dt` of it (relative to the smaller
//! dt) ticks with it.

use super::ArrayId;
use crate::arrays::RawArray;

/// Brian2's `Clock.epsilon_dt`.
pub const EPSILON_DT: f64 = 1e-4;
/// Brian2's `EventClock.epsilon` (absolute, between two event clocks).
pub const EPSILON_EVENT: f64 = 1e-14;

#[derive(Debug, Clone)]
pub struct Clock {
    pub dt: f64,
    pub timestep: i64,
    /// The run ends when the leading clock reaches this step.
    pub i_end: i64,
    /// Brian2's `t` and `timestep` arrays of this clock, kept up to date.
    pub t_array: Option<ArrayId>,
    pub timestep_array: Option<ArrayId>,
    /// An `EventClock`: its times (ending with +inf), indexed by `timestep`; `dt` unused.
    pub times: Option<Vec<f64>>,
}

impl Clock {
    pub fn t(&self) -> f64 {
        match &self.times {
            Some(times) => times
                .get(self.timestep.max(0) as usize)
                .copied()
                .unwrap_or(f64::INFINITY),
            None => self.timestep as f64 * self.dt,
        }
    }

    /// Brian2's `same_time(self, other)` (`Clock` and `EventClock` rules).
    fn same_time(&self, other: &Clock) -> bool {
        let (t1, t2) = (self.t(), other.t());
        if t1 == t2 {
            return true;
        }
        match (&self.times, &other.times) {
            (None, None) => (t1 - t2).abs() / self.dt.min(other.dt) < EPSILON_DT,
            (None, Some(_)) => (t1 - t2).abs() / self.dt < EPSILON_DT,
            (Some(_), None) => (t1 - t2).abs() / other.dt < EPSILON_DT,
            (Some(_), Some(_)) => (t1 - t2).abs() < EPSILON_EVENT,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Clocks {
    pub clocks: Vec<Clock>,
}

impl Clocks {
    /// The leading clock and the set that ticks with it (as a bit mask over clocks, in
    /// order), or `None` when the leading clock has reached its end.
    pub fn next(&self) -> Option<(usize, Vec<bool>)> {
        if self.clocks.is_empty() {
            return None;
        }
        let mut lead = 0;
        for (i, c) in self.clocks.iter().enumerate() {
            if c.t() < self.clocks[lead].t() {
                lead = i;
            }
        }
        let l = &self.clocks[lead];
        if l.timestep >= l.i_end {
            return None;
        }
        let cur = self.clocks.iter().map(|c| c.same_time(l)).collect();
        Some((lead, cur))
    }

    /// Write each clock's `t` and `timestep` into Brian2's host arrays.
    ///
    /// # Safety
    /// The clock arrays in `arrays` must be valid f64 / i64 arrays of at least one element.
    pub unsafe fn write_host(&self, arrays: &[RawArray]) {
        for c in &self.clocks {
            if let Some(a) = c.t_array {
                unsafe { *(arrays[a].ptr as *mut f64) = c.t() };
            }
            if let Some(a) = c.timestep_array {
                unsafe { *(arrays[a].ptr as *mut i64) = c.timestep };
            }
        }
    }

    pub fn advance(&mut self, cur: &[bool]) {
        for (c, &tick) in self.clocks.iter_mut().zip(cur) {
            if tick {
                c.timestep += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(dt: f64, i_end: i64) -> Clock {
        Clock {
            dt,
            timestep: 0,
            i_end,
            t_array: None,
            timestep_array: None,
            times: None,
        }
    }

    #[test]
    fn two_clocks_interleave_like_brian2() {
        // dt 0.1 ms and 0.3 ms over 0.6 ms: the slow clock ticks at 0, 0.3.
        let mut cs = Clocks {
            clocks: vec![clock(1e-4, 6), clock(3e-4, 2)],
        };
        let mut ticks = vec![];
        while let Some((_, cur)) = cs.next() {
            ticks.push(cur.clone());
            cs.advance(&cur);
        }
        let slow: Vec<usize> = ticks
            .iter()
            .enumerate()
            .filter(|(_, c)| c[1])
            .map(|(i, _)| i)
            .collect();
        assert_eq!(ticks.len(), 6);
        assert_eq!(slow, vec![0, 3]);
    }

    #[test]
    fn event_clock_ticks_at_its_times_with_the_regular_clock() {
        // dt 0.1 ms for 0.5 ms; events at 0.2 ms and 0.35 ms (the latter alone).
        let event = Clock {
            dt: 0.0,
            timestep: 0,
            i_end: 2,
            t_array: None,
            timestep_array: None,
            times: Some(vec![2e-4, 3.5e-4, f64::INFINITY]),
        };
        let mut cs = Clocks {
            clocks: vec![clock(1e-4, 5), event],
        };
        let mut ticks = vec![];
        while let Some((_, cur)) = cs.next() {
            ticks.push(cur.clone());
            cs.advance(&cur);
        }
        let expect = [
            [true, false],
            [true, false],
            [true, true],
            [true, false],
            [false, true],
            [true, false],
        ];
        assert_eq!(ticks, expect.map(|a| a.to_vec()).to_vec());
    }
}
