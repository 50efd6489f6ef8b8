//! Brian2's spike queue for one synaptic pathway: a ring of slots, each the synapses due
//! at that step, in the order Brian2's queue fills them (`synapses_push_spikes` pushes,
//! `synapses` peeks and advances).

use super::EngineError;

#[derive(Debug, Clone)]
pub struct SpikeQueue {
    /// Source neurons `[start, stop)` of the pathway (a subgroup's range).
    pub source_start: usize,
    pub source_stop: usize,
    /// Delay of each synapse in steps; one entry for a homogeneous delay.
    pub(crate) delays: Vec<u32>,
    /// Synapses of source neuron `i` (relative to `source_start`):
    /// `by_source[row_start[i]..row_start[i + 1]]`, ascending.
    pub(crate) row_start: Vec<usize>,
    pub(crate) by_source: Vec<i32>,
    /// `slots[(offset + d) % len]` holds the synapses due in `d` steps.
    pub slots: Vec<Vec<i32>>,
    pub offset: usize,
}

impl SpikeQueue {
    /// `sources[s]`: presynaptic neuron of synapse `s` (absolute index); `delays`: steps,
    /// per synapse or a single one; `slots`/`offset`: the state left by earlier runs.
    pub fn new(
        source_start: usize,
        source_stop: usize,
        sources: &[i32],
        delays: Vec<u32>,
        mut slots: Vec<Vec<i32>>,
        offset: usize,
    ) -> Result<Self, EngineError> {
        if delays.len() != 1 && delays.len() != sources.len() {
            return Err(EngineError::Invalid(format!(
                "spike queue: {} delays for {} synapses",
                delays.len(),
                sources.len()
            )));
        }
        let width = source_stop.saturating_sub(source_start);
        let mut counts = vec![0usize; width + 1];
        for &s in sources {
            let i = (s as usize)
                .checked_sub(source_start)
                .filter(|&i| i < width)
                .ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "spike queue: synapse source {s} outside [{source_start}, {source_stop})"
                    ))
                })?;
            counts[i + 1] += 1;
        }
        for i in 0..width {
            counts[i + 1] += counts[i];
        }
        let mut fill = counts.clone();
        let mut by_source = vec![0i32; sources.len()];
        for (syn, &s) in sources.iter().enumerate() {
            let i = s as usize - source_start;
            by_source[fill[i]] = syn as i32;
            fill[i] += 1;
        }
        // Room for the longest delay; keep queued spikes where they are due (as
        // Brian2's queue does when it grows).
        let max_delay = delays.iter().copied().max().unwrap_or(0) as usize;
        let offset = if slots.is_empty() { 0 } else { offset };
        if slots.is_empty() {
            slots.push(Vec::new());
        }
        if max_delay + 1 > slots.len() {
            let len = slots.len();
            slots.rotate_left(offset % len);
            slots.resize(max_delay + 1, Vec::new());
            return Ok(Self {
                source_start,
                source_stop,
                delays,
                row_start: counts,
                by_source,
                slots,
                offset: 0,
            });
        }
        Ok(Self {
            source_start,
            source_stop,
            delays,
            row_start: counts,
            by_source,
            offset: offset % slots.len(),
            slots,
        })
    }

    /// Queue the synapses of this step's events (ascending absolute indices).
    pub fn push(&mut self, events: &[i32]) {
        let lo = events.partition_point(|&i| (i as usize) < self.source_start);
        let hi = events.partition_point(|&i| (i as usize) < self.source_stop);
        let len = self.slots.len();
        for &e in &events[lo..hi] {
            let i = e as usize - self.source_start;
            let syns = &self.by_source[self.row_start[i]..self.row_start[i + 1]];
            if self.delays.len() == 1 {
                let slot = (self.offset + self.delays[0] as usize) % len;
                self.slots[slot].extend_from_slice(syns);
            } else {
                for &s in syns {
                    let slot = (self.offset + self.delays[s as usize] as usize) % len;
                    self.slots[slot].push(s);
                }
            }
        }
    }

    /// The synapses due now.
    pub fn peek(&self) -> &[i32] {
        &self.slots[self.offset]
    }

    pub fn advance(&mut self) {
        self.slots[self.offset].clear();
        self.offset = (self.offset + 1) % self.slots.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heterogeneous_delays_deliver_in_push_order() {
        // Synapses 0,1 from neuron 5, synapse 2 from neuron 6; delays 0, 2, 2 steps.
        let mut q = SpikeQueue::new(5, 7, &[5, 5, 6], vec![0, 2, 2], vec![], 0).unwrap();
        q.push(&[1, 5, 6, 9]);
        assert_eq!(q.peek(), &[0]);
        q.advance();
        assert!(q.peek().is_empty());
        q.advance();
        assert_eq!(q.peek(), &[1, 2]);
        q.advance();
        assert!(q.peek().is_empty());
    }

    #[test]
    fn growing_keeps_queued_spikes_due_at_the_same_step() {
        let slots = vec![vec![], vec![7], vec![3]];
        // offset 1: synapse 7 due now, 3 next step.
        let q = SpikeQueue::new(0, 10, &[0; 8], vec![4], slots, 1).unwrap();
        assert_eq!(q.slots.len(), 5);
        assert_eq!(q.peek(), &[7]);
        assert_eq!(q.slots[(q.offset + 1) % 5], vec![3]);
    }
}
