//! An append-only vector in fixed-size chunks, for the tables that grow with every hold
//! (holds, their lines, bookings, the expiry heap).
//!
//! A `Vec` that outgrows its capacity moves every element to a buffer twice the size: at
//! 2 M holds that is 80 MB copied into 160 MB of memory the process never touched, whose
//! pages the kernel first zeroes, all inside one decision on the shard thread. Measured
//! through the binary (docs/benchmarks.md, "Growth pauses"), each such doubling stopped the
//! shard for 250-500 ms, and at 4 M live holds for longer. Here growth allocates one more
//! chunk of [`CHUNK`] elements and moves nothing, so the cost of fresh memory is spread
//! over the pushes that fill it.
//!
//! Indexes are flat (`0..len`), as in the `Vec` it replaces, and it serializes as the same
//! sequence, so a snapshot's bytes are unchanged.
//!
//! Chunks are shared between clones and copied on the first write (`Arc`): a clone costs
//! one reference count per chunk, not a copy of every element. The snapshot writer's copy
//! of a follower's engine at 1-2 M holds took the follower 33-84 ms of a core, at normal
//! priority, in the middle of a sale; now the follower copies only the chunks it changes
//! before the writer drops its copy, one chunk at a time (docs/benchmarks.md, "Snapshot
//! copies"). The shard's own engine is never cloned while it runs, so its chunks are never
//! shared and a write costs one check of the count.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

/// log2 of [`CHUNK`].
const CHUNK_BITS: u32 = 16;
/// Elements per chunk (65,536: 2.5 MiB of holds, 512 KiB of lines).
pub const CHUNK: usize = 1 << CHUNK_BITS;
const MASK: usize = CHUNK - 1;

/// An append-only sequence stored in chunks of [`CHUNK`] elements, shared by clones.
pub struct Chunked<T> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

/// A clone shares every chunk; each side copies a chunk when it first writes to it.
impl<T> Clone for Chunked<T> {
    fn clone(&self) -> Self {
        Chunked {
            chunks: self.chunks.clone(),
            len: self.len,
        }
    }
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    /// Elements held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The element at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&T> {
        (index < self.len).then(|| &self.chunks[index >> CHUNK_BITS][index & MASK])
    }

    /// The first element.
    pub fn first(&self) -> Option<&T> {
        self.get(0)
    }

    /// Every element in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &T> + DoubleEndedIterator + '_ {
        Iter {
            inner: self.chunks.iter().flat_map(|chunk| chunk.iter()),
            left: self.len,
        }
    }
}

impl<T: Clone> Chunked<T> {
    /// Chunk `at`, to change: copied first if a clone shares it (into a chunk of full
    /// capacity, so the pushes that follow move nothing).
    fn chunk_mut(&mut self, at: usize) -> &mut Vec<T> {
        let chunk = &mut self.chunks[at];
        if Arc::get_mut(chunk).is_none() {
            let mut own = Vec::with_capacity(CHUNK);
            own.extend_from_slice(chunk);
            *chunk = Arc::new(own);
        }
        Arc::get_mut(chunk).expect("the chunk was just made this table's own")
    }

    /// Appends `value`; never moves the elements already in (but those of a last chunk
    /// shared with a clone, once).
    pub fn push(&mut self, value: T) {
        let at = self.len >> CHUNK_BITS;
        if at == self.chunks.len() {
            self.chunks.push(Arc::new(Vec::with_capacity(CHUNK)));
        }
        let chunk = self.chunk_mut(at);
        if chunk.capacity() < CHUNK {
            chunk.reserve_exact(CHUNK - chunk.len());
        }
        chunk.push(value);
        self.len += 1;
    }

    /// Removes and returns the last element. One emptied chunk is kept for the next
    /// pushes, so a length going back and forth over a chunk boundary allocates nothing.
    pub fn pop(&mut self) -> Option<T> {
        let at = self.len.checked_sub(1)? >> CHUNK_BITS;
        let value = self.chunk_mut(at).pop();
        self.len -= 1;
        self.chunks.truncate(at + 2);
        value
    }

    /// Appends every element of `values`.
    pub fn extend_from_slice(&mut self, values: &[T]) {
        for value in values {
            self.push(value.clone());
        }
    }

    /// Elements `start..end`: borrowed when they lie in one chunk (always, for a range
    /// shorter than a chunk, but for one that crosses a chunk boundary), else copied.
    pub fn range(&self, start: usize, end: usize) -> Cow<'_, [T]> {
        assert!(
            start <= end && end <= self.len,
            "range {start}..{end} of {}",
            self.len
        );
        if start == end {
            return Cow::Borrowed(&[]);
        }
        let chunk = start >> CHUNK_BITS;
        if (end - 1) >> CHUNK_BITS == chunk {
            Cow::Borrowed(&self.chunks[chunk][start & MASK..((end - 1) & MASK) + 1])
        } else {
            Cow::Owned((start..end).map(|i| self[i].clone()).collect())
        }
    }
}

/// [`Chunked::iter`]: the chunks flattened, with an exact length.
struct Iter<I> {
    inner: I,
    left: usize,
}

impl<'a, T: 'a, I: Iterator<Item = &'a T>> Iterator for Iter<I> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        let next = self.inner.next()?;
        self.left -= 1;
        Some(next)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<'a, T: 'a, I: Iterator<Item = &'a T>> ExactSizeIterator for Iter<I> {}

impl<'a, T: 'a, I: DoubleEndedIterator<Item = &'a T>> DoubleEndedIterator for Iter<I> {
    fn next_back(&mut self) -> Option<&'a T> {
        let next = self.inner.next_back()?;
        self.left -= 1;
        Some(next)
    }
}

impl<T> Index<usize> for Chunked<T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        assert!(index < self.len, "index {index} of {}", self.len);
        &self.chunks[index >> CHUNK_BITS][index & MASK]
    }
}

impl<T: Clone> IndexMut<usize> for Chunked<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        assert!(index < self.len, "index {index} of {}", self.len);
        &mut self.chunk_mut(index >> CHUNK_BITS)[index & MASK]
    }
}

impl<T: Clone> FromIterator<T> for Chunked<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut chunked = Chunked::default();
        for value in iter {
            chunked.push(value);
        }
        chunked
    }
}

impl<T: PartialEq> PartialEq for Chunked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Eq> Eq for Chunked<T> {}

impl<T: fmt::Debug> fmt::Debug for Chunked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// As a `Vec<T>`: the length, then the elements.
impl<T: Serialize> Serialize for Chunked<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de, T: Deserialize<'de> + Clone> Deserialize<'de> for Chunked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Seq<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de> + Clone> Visitor<'de> for Seq<T> {
            type Value = Chunked<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Chunked<T>, A::Error> {
                let mut chunked = Chunked::default();
                while let Some(value) = seq.next_element()? {
                    chunked.push(value);
                }
                Ok(chunked)
            }
        }

        deserializer.deserialize_seq(Seq(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_ranges_and_bytes_are_those_of_a_vec() {
        let n = 2 * CHUNK + 123;
        let vec: Vec<u64> = (0..n as u64).map(|i| i * 3).collect();
        let chunked: Chunked<u64> = vec.iter().copied().collect();
        assert_eq!(chunked.len(), n);
        assert_eq!(chunked.iter().len(), n);
        assert!(chunked.iter().copied().eq(vec.iter().copied()));
        assert!(chunked.iter().rev().copied().eq(vec.iter().rev().copied()));
        for i in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, n - 1] {
            assert_eq!(chunked[i], vec[i]);
            assert_eq!(chunked.get(i), Some(&vec[i]));
        }
        assert_eq!(chunked.get(n), None);
        for (start, end) in [
            (0, 0),
            (5, 9),
            (CHUNK - 3, CHUNK),
            (CHUNK - 3, CHUNK + 4),
            (0, n),
        ] {
            let range = chunked.range(start, end);
            assert_eq!(&range[..], &vec[start..end]);
            let crosses = end > start && (start >> CHUNK_BITS) != ((end - 1) >> CHUNK_BITS);
            assert_eq!(matches!(range, Cow::Owned(_)), crosses, "{start}..{end}");
        }
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&chunked, config).unwrap();
        assert_eq!(bytes, bincode::serde::encode_to_vec(&vec, config).unwrap());
        let (back, _): (Chunked<u64>, _) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(back, chunked);
        let mut popped = back.clone();
        for want in vec.iter().rev().take(CHUNK + 200) {
            assert_eq!(popped.pop(), Some(*want));
        }
        assert_eq!(popped.len(), n - CHUNK - 200);
        assert!(popped
            .iter()
            .copied()
            .eq(vec[..n - CHUNK - 200].iter().copied()));
        popped.push(7);
        assert_eq!(popped[n - CHUNK - 200], 7);
    }

    #[test]
    fn a_clone_shares_its_chunks_until_either_side_writes() {
        let n = 3 * CHUNK + 10;
        let original: Chunked<u64> = (0..n as u64).collect();
        let mut copy = original.clone();
        let shared = |a: &Chunked<u64>, b: &Chunked<u64>| -> Vec<bool> {
            a.chunks
                .iter()
                .zip(&b.chunks)
                .map(|(x, y)| Arc::ptr_eq(x, y))
                .collect()
        };
        assert_eq!(shared(&original, &copy), [true, true, true, true]);
        copy[CHUNK + 5] = 99;
        copy.push(7);
        assert_eq!(shared(&original, &copy), [true, false, true, false]);
        assert_eq!(original[CHUNK + 5], CHUNK as u64 + 5);
        assert_eq!(copy[CHUNK + 5], 99);
        assert_eq!(original.len(), n);
        assert_eq!(copy.len(), n + 1);
        assert_eq!(copy[n], 7);
        // The copied last chunk has room for a whole chunk: later pushes move nothing.
        assert_eq!(copy.chunks[3].capacity(), CHUNK);
        let mut popped = original.clone();
        assert_eq!(popped.pop(), Some(n as u64 - 1));
        assert_eq!(original[n - 1], n as u64 - 1);
        assert!(original.iter().copied().eq(0..n as u64));
        let mut expected: Vec<u64> = (0..n as u64).collect();
        expected[CHUNK + 5] = 99;
        expected.push(7);
        assert!(copy.iter().copied().eq(expected));
    }
}
