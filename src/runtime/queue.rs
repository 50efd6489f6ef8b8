//! Brian2's spike queue for one synaptic pathway: a ring of slots, each the synapses due
//! at that step, in the order Brian2's queue fills them (`synapses_push_spikes` pushes,
//! `synapses` peeks and advances).

use super::EngineError;

use std::sync::Arc;

use rayon::prelude::*;

/// What a pathway's queue knows of its synapses: sources and delays, grouped by source.
/// Built once per connectivity and shared by the runs that follow while the synapses and
/// delays stay as they were ([`fingerprint`] tells).
#[derive(Debug)]
pub struct QueueLayout {
    /// Source neurons `[start, stop)` of the pathway (a subgroup's range).
    pub source_start: usize,
    pub source_stop: usize,
    /// Delay of each synapse in steps; one entry for a homogeneous delay.
    pub(crate) delays: Vec<u32>,
    /// Synapses of source neuron `i` (relative to `source_start`):
    /// `by_source[row_start[i]..row_start[i + 1]]`, ascending.
    pub(crate) row_start: Vec<usize>,
    pub(crate) by_source: Vec<i32>,
    /// The longest delay in steps.
    max_delay: u32,
    /// Built on first use by the GPU queue, then kept with the layout.
    grouping: std::sync::OnceLock<Grouping>,
}

/// The synapses grouped by (source, delay) as the GPU queue uploads them: per source,
/// its groups in ascending delay, each group's synapses ascending (the order Brian2's
/// queue delivers them).
#[derive(Debug)]
pub struct Grouping {
    /// Groups of relative source `i`: `src_group[i]..src_group[i + 1]`.
    pub src_group: Vec<u32>,
    pub group_delay: Vec<u32>,
    /// Synapses of group `g`: `perm[group_start[g]..group_start[g + 1]]`.
    pub group_start: Vec<u32>,
    pub perm: Vec<i32>,
}

impl QueueLayout {
    /// `sources[s]`: presynaptic neuron of synapse `s` (absolute index); `delays`: steps,
    /// per synapse or a single one.
    pub fn new(
        source_start: usize,
        source_stop: usize,
        sources: &[i32],
        delays: Vec<u32>,
    ) -> Result<Self, EngineError> {
        if delays.len() != 1 && delays.len() != sources.len() {
            return Err(EngineError::Invalid(format!(
                "spike queue: {} delays for {} synapses",
                delays.len(),
                sources.len()
            )));
        }
        let width = source_stop.saturating_sub(source_start);
        let in_range = |s: i32| {
            (s as usize)
                .checked_sub(source_start)
                .filter(|&i| i < width && s >= 0)
                .is_some()
        };
        let sorted = crate::threads::install(|| {
            sources.par_windows(2).all(|w| w[0] <= w[1])
                && sources.first().is_none_or(|&s| in_range(s))
                && sources.last().is_none_or(|&s| in_range(s))
        });
        let (row_start, by_source) = if sorted {
            Self::runs(source_start, width, sources)
        } else {
            Self::counting(source_start, source_stop, sources)?
        };
        Ok(QueueLayout {
            source_start,
            source_stop,
            max_delay: delays.iter().copied().max().unwrap_or(0),
            grouping: std::sync::OnceLock::new(),
            delays,
            row_start,
            by_source,
        })
    }

    /// Sources in ascending order (Brian2's, as connect() makes synapses): each source's
    /// synapses are one run and the order is the identity.
    fn runs(source_start: usize, width: usize, sources: &[i32]) -> (Vec<usize>, Vec<i32>) {
        let mut row_start = Vec::with_capacity(width + 1);
        let mut at = 0;
        for i in 0..width {
            row_start.push(at);
            let s = (source_start + i) as i32;
            at += sources[at..].iter().take_while(|&&x| x == s).count();
        }
        row_start.push(at);
        let mut by_source = vec![0i32; sources.len()];
        crate::threads::install(|| {
            by_source
                .par_chunks_mut(1 << 16)
                .enumerate()
                .for_each(|(c, chunk)| {
                    for (k, v) in chunk.iter_mut().enumerate() {
                        *v = ((c << 16) + k) as i32;
                    }
                })
        });
        (row_start, by_source)
    }

    /// Any order: a counting sort by source (stable, so ascending within a source).
    fn counting(
        source_start: usize,
        source_stop: usize,
        sources: &[i32],
    ) -> Result<(Vec<usize>, Vec<i32>), EngineError> {
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
        Ok((counts, by_source))
    }

    /// The synapses by (source, delay), computed once per layout.
    pub fn grouping(&self) -> &Grouping {
        self.grouping.get_or_init(|| {
            let width = self.source_stop.saturating_sub(self.source_start);
            let homogeneous = self.delays.len() == 1;
            let mut g = Grouping {
                src_group: Vec::with_capacity(width + 1),
                group_delay: Vec::new(),
                group_start: Vec::new(),
                perm: Vec::with_capacity(self.by_source.len()),
            };
            g.src_group.push(0);
            for i in 0..width {
                let syns = &self.by_source[self.row_start[i]..self.row_start[i + 1]];
                if homogeneous {
                    g.group_delay.push(self.delays[0]);
                    g.group_start.push(g.perm.len() as u32);
                    g.perm.extend_from_slice(syns);
                } else {
                    let mut sorted = syns.to_vec();
                    sorted.sort_by_key(|&s| self.delays[s as usize]); // stable
                    let mut prev = None;
                    for s in sorted {
                        let dl = self.delays[s as usize];
                        if prev != Some(dl) {
                            g.group_delay.push(dl);
                            g.group_start.push(g.perm.len() as u32);
                            prev = Some(dl);
                        }
                        g.perm.push(s);
                    }
                }
                g.src_group.push(g.group_delay.len() as u32);
            }
            g.group_start.push(g.perm.len() as u32);
            g
        })
    }

    /// As [`QueueLayout::new`], from delays in seconds rounded to steps of `dt` as Brian2's
    /// queue rounds them (`int(d / dt + 0.5)`).
    pub fn from_seconds(
        source_start: usize,
        source_stop: usize,
        sources: &[i32],
        delays: &[f64],
        dt: f64,
    ) -> Result<Self, EngineError> {
        let steps = crate::threads::install(|| {
            delays
                .par_iter()
                .map(|&d| {
                    let s = (d / dt + 0.5).trunc();
                    if s.is_nan() || s < 0.0 {
                        Err(EngineError::Invalid(format!(
                            "spike queue: delay {d} s is negative or not a number"
                        )))
                    } else if s > u32::MAX as f64 {
                        Err(EngineError::Invalid(format!(
                            "spike queue: delay {d} s is more than 2^32 time steps of {dt} s"
                        )))
                    } else {
                        Ok(s as u32)
                    }
                })
                .collect::<Result<Vec<u32>, _>>()
        })?;
        Self::new(source_start, source_stop, sources, steps)
    }
}

/// A hash of what a [`QueueLayout`] is built from: equal inputs give equal hashes, and a
/// change anywhere (a synapse, a delay, dt, the source range) changes it with
/// overwhelming probability (not a cryptographic hash: it guards against changes, not
/// adversaries). Parallel, a few ms per 10^7 synapses.
pub fn fingerprint(
    source_start: usize,
    source_stop: usize,
    sources: &[i32],
    delays: &[f64],
    dt: f64,
) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    fn mix(h: u64, w: u64) -> u64 {
        (h ^ w).wrapping_mul(K).rotate_left(31)
    }
    fn words<T: Sync>(xs: &[T], word: impl Fn(&T) -> u64 + Sync) -> u64 {
        crate::threads::install(|| {
            xs.par_chunks(1 << 16)
                .map(|c| {
                    // Four independent lanes: the multiplies overlap instead of chaining.
                    let mut lanes = [0x51_7CC1_B727_220A_u64, 1, 2, 3];
                    let mut quads = c.chunks_exact(4);
                    for q in &mut quads {
                        for (l, x) in lanes.iter_mut().zip(q) {
                            *l = mix(*l, word(x));
                        }
                    }
                    let tail = quads
                        .remainder()
                        .iter()
                        .fold(lanes[0], |h, x| mix(h, word(x)));
                    [tail, lanes[1], lanes[2], lanes[3]]
                        .into_iter()
                        .fold(0, mix)
                })
                .collect::<Vec<u64>>()
        })
        .into_iter()
        .fold(xs.len() as u64, mix)
    }
    let h = [
        source_start as u64,
        source_stop as u64,
        dt.to_bits(),
        words(sources, |&s| s as u32 as u64),
        words(delays, |d| d.to_bits()),
    ];
    h.into_iter().fold(0, mix)
}

/// Brian2's spike queue for one synaptic pathway: a ring of slots, each the synapses due
/// at that step, over a (shared) [`QueueLayout`].
#[derive(Debug, Clone)]
pub struct SpikeQueue {
    pub layout: Arc<QueueLayout>,
    /// `slots[(offset + d) % len]` holds the synapses due in `d` steps.
    pub slots: Vec<Vec<i32>>,
    pub offset: usize,
}

impl std::ops::Deref for SpikeQueue {
    type Target = QueueLayout;
    fn deref(&self) -> &QueueLayout {
        &self.layout
    }
}

impl SpikeQueue {
    /// `sources[s]`: presynaptic neuron of synapse `s` (absolute index); `delays`: steps,
    /// per synapse or a single one; `slots`/`offset`: the state left by earlier runs.
    pub fn new(
        source_start: usize,
        source_stop: usize,
        sources: &[i32],
        delays: Vec<u32>,
        slots: Vec<Vec<i32>>,
        offset: usize,
    ) -> Result<Self, EngineError> {
        let layout = QueueLayout::new(source_start, source_stop, sources, delays)?;
        Ok(Self::with_layout(Arc::new(layout), slots, offset))
    }

    /// A queue over `layout` holding the spikes queued by earlier runs.
    pub fn with_layout(layout: Arc<QueueLayout>, mut slots: Vec<Vec<i32>>, offset: usize) -> Self {
        // Room for the longest delay; keep queued spikes where they are due (as
        // Brian2's queue does when it grows).
        let max_delay = layout.max_delay as usize;
        let offset = if slots.is_empty() { 0 } else { offset };
        if slots.is_empty() {
            slots.push(Vec::new());
        }
        if max_delay + 1 > slots.len() {
            let len = slots.len();
            slots.rotate_left(offset % len);
            slots.resize(max_delay + 1, Vec::new());
            return Self {
                layout,
                slots,
                offset: 0,
            };
        }
        Self {
            layout,
            offset: offset % slots.len(),
            slots,
        }
    }

    /// Queue the synapses of this step's events (ascending absolute indices).
    pub fn push(&mut self, events: &[i32]) {
        let lo = events.partition_point(|&i| (i as usize) < self.source_start);
        let hi = events.partition_point(|&i| (i as usize) < self.source_stop);
        let len = self.slots.len();
        let q = &*self.layout;
        for &e in &events[lo..hi] {
            let i = e as usize - q.source_start;
            let syns = &q.by_source[q.row_start[i]..q.row_start[i + 1]];
            if q.delays.len() == 1 {
                let slot = (self.offset + q.delays[0] as usize) % len;
                self.slots[slot].extend_from_slice(syns);
            } else {
                for &s in syns {
                    let slot = (self.offset + q.delays[s as usize] as usize) % len;
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
    fn sorted_sources_give_the_counting_sorts_layout() {
        // Runs of every length, sources missing at both ends and inside, a subgroup.
        let mut sources = Vec::new();
        for s in 12..400 {
            sources.extend(std::iter::repeat_n(s, (s * 7 % 5) as usize));
        }
        sources.extend(std::iter::repeat_n(399, 70_000));
        let (a, b) = QueueLayout::runs(10, 395, &sources);
        let (c, d) = QueueLayout::counting(10, 405, &sources).unwrap();
        assert_eq!((a, b), (c, d));
        let layout = QueueLayout::new(10, 405, &sources, vec![3]).unwrap();
        assert_eq!(layout.by_source.len(), sources.len());
        // Out of range or unsorted: the counting sort, with its error.
        assert!(QueueLayout::new(10, 405, &[5, 11], vec![1]).is_err());
        assert!(QueueLayout::new(10, 405, &[11, 404, 405], vec![1]).is_err());
        let l = QueueLayout::new(0, 3, &[2, 0, 2, 1], vec![1]).unwrap();
        assert_eq!(
            (l.row_start, l.by_source),
            (vec![0, 1, 2, 4], vec![1, 3, 0, 2])
        );
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
