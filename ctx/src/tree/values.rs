//! Request-scoped values: the lookup, and what lets it skip.
//!
//! Two things keep a lookup from walking the whole chain as Go's does:
//!
//! - a per-node filter of the value types at or above (`types`, one of 64
//!   bits per type): a clear bit proves a miss in one hop;
//! - jump pointers over the value nodes (Myers' applicative random-access
//!   stack, 1983): each value node points some way up (`jump`) and knows the
//!   type bits of the nodes it jumps over (`jump_types`), so a hit far above
//!   values of other types (a request's values under a chain of per-call
//!   values) takes O(log n) hops instead of n. The jump of a node is either
//!   its parent or its parent's jump's jump, chosen in O(1) at `with_value`,
//!   which keeps every jump path O(log n) long.
//!
//! Cancel nodes between value nodes are still walked one by one (a cancel
//! node has no room for a pointer of its own: it stays 64 bytes).

use std::any::TypeId;

use super::{Repr, ValueNode, ValueRef};

impl Repr {
    /// The nearest value of type `T` at or above this node.
    pub(crate) fn value<T: Send + Sync + 'static>(&self) -> Option<&T> {
        let bit = type_bit(TypeId::of::<T>());
        let mut node = self.nearest_value()?;
        loop {
            if node.types & bit == 0 {
                // No value of this type at or above: a miss in one hop.
                return None;
            }
            if let Some(value) = node.downcast::<T>() {
                return Some(value);
            }
            node = match &node.jump {
                // Nothing of this type from here up to the jump: skip it all.
                Some(jump) if node.jump_types & bit == 0 => jump,
                _ => node.parent.nearest_value()?,
            };
        }
    }

    /// The nearest value node at or above, walked to through cancel nodes.
    /// (Not `value_within(usize::MAX)`: the lookup's hot loop, where a hop
    /// counter costs a third more instructions through a cancel chain.)
    fn nearest_value(&self) -> Option<&ValueRef> {
        let mut current = self;
        loop {
            match current {
                Repr::Value(node) => return Some(node),
                Repr::Background | Repr::Todo => return None,
                Repr::Cancel(_) | Repr::WithoutCancel(_) => current = current.parent()?,
            }
        }
    }

    /// The nearest value node at or above, looking at most `reach` nodes
    /// up: `Ok(None)` if there is none at all, `Err(())` if there may be
    /// one further up.
    fn value_within(&self, reach: usize) -> Result<Option<&ValueRef>, ()> {
        let mut current = self;
        for _ in 0..reach {
            current = match current {
                Repr::Value(node) => return Ok(Some(node)),
                Repr::Background | Repr::Todo => return Ok(None),
                Repr::Cancel(_) | Repr::WithoutCancel(_) => match current.parent() {
                    Some(parent) => parent,
                    None => return Ok(None),
                },
            };
        }
        Err(())
    }

    /// A child carrying `value`.
    pub(crate) fn with_value<T: Send + Sync + 'static>(&self, value: T) -> Repr {
        let own = type_bit(TypeId::of::<T>());
        let (types, jump, jump_types, depth) = match self.value_within(VALUE_FILTER_REACH) {
            Ok(Some(parent)) => {
                let (jump, jump_types) = match parent.jump.as_ref().map(|j| (j, j.jump.as_ref())) {
                    // Myers' rule: two equal jumps in a row make one twice
                    // as long.
                    Some((j, Some(jj))) if parent.depth - j.depth == j.depth - jj.depth => {
                        (jj.clone(), own | parent.jump_types | j.jump_types)
                    }
                    _ => (parent.clone(), own),
                };
                (
                    parent.types | own,
                    Some(jump),
                    jump_types,
                    parent.depth.saturating_add(1),
                )
            }
            Ok(None) => (own, None, u64::MAX, 0),
            Err(()) => (u64::MAX, None, u64::MAX, 0),
        };
        let node = ValueNode {
            types,
            jump,
            jump_types,
            depth,
            parent: self.clone(),
            signal: self.signal().cloned(),
        };
        Repr::Value(ValueRef::new(node, value))
    }
}

/// How far up `with_value` looks for the filter of the value node above.
const VALUE_FILTER_REACH: usize = 32;

/// One of 64 bits for a type: the top bits of its `TypeId`'s hash (which
/// is itself a hash, so they are well spread).
#[inline]
fn type_bit(id: TypeId) -> u64 {
    /// Keeps what `TypeId::hash` writes: no hashing of our own.
    struct Keep(u64);
    impl std::hash::Hasher for Keep {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &byte in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(byte);
            }
        }
        fn write_u64(&mut self, n: u64) {
            self.0 ^= n;
        }
    }
    let mut keep = Keep(0);
    std::hash::Hash::hash(&id, &mut keep);
    1 << (keep.0 >> 58)
}

// Plain std types: loom's exist only inside a model.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::Repr;

    struct A(u32);
    struct B;

    /// A chain of `n` cancel nodes below `top` (their guards are leaked on
    /// purpose: only the shape matters here).
    fn below(top: Repr, n: usize) -> Repr {
        (0..n).fold(top, |parent, _| {
            Repr::Cancel(super::super::CancelNode::new(&parent, None, 0))
        })
    }

    #[test]
    fn the_value_filter_never_hides_a_value() {
        let root = Repr::Background.with_value(A(1));
        // Within the filter's reach, and far beyond it.
        for gap in [0, 5, super::VALUE_FILTER_REACH + 8] {
            let leaf = below(root.clone(), gap).with_value(7u64);
            assert_eq!(leaf.value::<A>().map(|a| a.0), Some(1), "gap {gap}");
            assert_eq!(leaf.value::<u64>(), Some(&7));
            assert!(leaf.value::<B>().is_none());
        }
    }

    /// The lookup Go does: every node, bottom to top.
    fn walk<T: 'static>(mut repr: &Repr) -> Option<&T> {
        loop {
            if let Repr::Value(node) = repr {
                if let Some(value) = node.downcast::<T>() {
                    return Some(value);
                }
            }
            repr = repr.parent()?;
        }
    }

    #[test]
    fn jumps_find_what_the_plain_walk_finds_on_random_chains() {
        struct C(u32);
        struct D(u32);
        // xorshift: deterministic, no dependency.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for chain in 0..300 {
            let mut repr = Repr::Background;
            let mut guards = Vec::new();
            let len = next(200) as u32;
            for i in 0..len {
                repr = match next(if chain % 3 == 0 { 9 } else { 6 }) {
                    0 => repr.with_value(A(i)),
                    1 => repr.with_value(B),
                    2 => repr.with_value(C(i)),
                    3 | 4 => repr.with_value(i),
                    5 => repr.with_value(D(i)),
                    // Some chains have runs of cancel nodes, some past the
                    // filter's reach.
                    6 => below(repr, 1 + next(40) as usize),
                    7 => repr.without_cancel(),
                    _ => {
                        let node = super::super::CancelNode::new(&repr, None, 0);
                        guards.push(node.clone());
                        Repr::Cancel(node)
                    }
                };
                // Check from every prefix of every chain.
                let same = |found: Option<u32>, walked: Option<u32>| assert_eq!(found, walked);
                same(
                    repr.value::<A>().map(|a| a.0),
                    walk::<A>(&repr).map(|a| a.0),
                );
                same(
                    repr.value::<C>().map(|c| c.0),
                    walk::<C>(&repr).map(|c| c.0),
                );
                same(
                    repr.value::<D>().map(|d| d.0),
                    walk::<D>(&repr).map(|d| d.0),
                );
                same(repr.value::<u32>().copied(), walk::<u32>(&repr).copied());
                assert_eq!(repr.value::<B>().is_some(), walk::<B>(&repr).is_some());
                assert!(repr.value::<u8>().is_none());
            }
        }
    }

    #[test]
    fn a_hit_far_above_other_values_takes_few_hops() {
        let mut chain = Repr::Background.with_value(A(1));
        for i in 0..10_000usize {
            chain = chain.with_value(i);
        }
        // Count the hops the lookup makes, following its own rule.
        let bit = super::type_bit(std::any::TypeId::of::<A>());
        let Repr::Value(node) = &chain else {
            unreachable!()
        };
        let mut node = node;
        let mut hops = 0;
        while node.type_id() != std::any::TypeId::of::<A>() {
            node = match &node.jump {
                Some(jump) if node.jump_types & bit == 0 => jump,
                _ => node.parent.nearest_value().unwrap(),
            };
            hops += 1;
        }
        assert!(hops <= 2 * 14, "{hops} hops for 10 000 values (log2 is 14)");
        assert_eq!(chain.value::<A>().map(|a| a.0), Some(1));
    }

    #[test]
    fn a_miss_stops_at_the_first_value_node() {
        let mut chain = Repr::Background;
        for i in 0..100usize {
            chain = chain.with_value(i);
        }
        let Repr::Value(node) = &chain else {
            unreachable!()
        };
        assert_eq!(node.types, super::type_bit(std::any::TypeId::of::<usize>()));
        assert!(chain.value::<B>().is_none());
        assert_eq!(chain.value::<usize>(), Some(&99));
    }
}
