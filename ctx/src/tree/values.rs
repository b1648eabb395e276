//! Request-scoped values: the lookup walk, and a per-node filter of the
//! value types above that answers a miss in one hop.

use std::any::TypeId;

use super::{Repr, ValueNode};
use crate::loom::Arc;

impl Repr {
    /// The nearest value of type `T` at or above this node.
    pub(crate) fn value<T: Send + Sync + 'static>(&self) -> Option<&T> {
        let wanted = TypeId::of::<T>();
        let bit = type_bit(wanted);
        let mut current = self;
        loop {
            if let Repr::Value(node) = current {
                if node.types & bit == 0 {
                    // No value of this type at or above: a miss in one hop.
                    return None;
                }
                if node.type_id == wanted {
                    return node.value.downcast_ref::<T>();
                }
            }
            current = current.parent()?;
        }
    }

    /// The `types` filter of the nearest value node at or above, looking
    /// at most `VALUE_FILTER_REACH` nodes up; all bits if it is further.
    fn value_types(&self) -> u64 {
        let mut current = self;
        for _ in 0..VALUE_FILTER_REACH {
            match current {
                Repr::Value(node) => return node.types,
                Repr::Background | Repr::Todo => return 0,
                Repr::Cancel(_) | Repr::WithoutCancel(_) => {}
            }
            current = match current.parent() {
                Some(parent) => parent,
                None => return 0,
            };
        }
        u64::MAX
    }

    /// A child carrying `value`.
    pub(crate) fn with_value<T: Send + Sync + 'static>(&self, value: T) -> Repr {
        Repr::Value(Arc::new(ValueNode {
            types: self.value_types() | type_bit(TypeId::of::<T>()),
            parent: self.clone(),
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            value: Box::new(value),
            signal: self.signal().cloned(),
        }))
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

#[cfg(test)]
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
