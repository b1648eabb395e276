//! The value node: one allocation holding the links and the value itself.
//!
//! `with_value` is on every request's path, and Go's `WithValue` makes one
//! allocation. `Arc<ValueNode>` with a `Box<dyn Any>` inside made two (the
//! free of the second was a quarter of the instructions of a
//! `with_value` + drop). `Arc<ValueNode<dyn Any>>` would make one but is a
//! fat pointer: every `Context` would grow to three words, and the cancel
//! node, which holds its parent, past its 64 bytes. So the cell is ours: a
//! header (`Header`: a count, a table, the type, the `ValueNode`) at the
//! front of a typed cell (`Typed<T>`), reached through a thin counted
//! pointer (`ValueRef`), with a per-type table that knows how to free the
//! cell. It is the layout of tokio's task cells (a header with a vtable in
//! front of the typed future), and the count follows `std::sync::Arc`
//! (relaxed increments, release decrements, an acquire before the free).
//! The crate's `unsafe` blocks are in this file and in `hot.rs` (the
//! threads' waiter slots); the loom models that
//! derive, share and drop value contexts across threads run through it
//! (`ctx/tests/loom_*.rs`).

use std::any::TypeId;
use std::ops::Deref;
use std::ptr::NonNull;

use super::{CancelNode, Repr};
use crate::loom::{Arc, AtomicUsize, Ordering};

/// The front of a value cell: its count, what its value is, and its place
/// in the tree.
#[repr(C)]
struct Header {
    /// Strong references (`ValueRef`s); there are no weak ones.
    refs: AtomicUsize,
    /// Frees the whole cell, and names its value's type.
    vtable: &'static VTable,
    /// The type of the value behind this header (the `T` of its `Typed<T>`).
    type_id: TypeId,
    node: ValueNode,
}

/// A value node's place in the tree (see `values.rs`), reached through a
/// [`ValueRef`]. Every field is set at creation and never changed while
/// the node is shared (`drop_chain` takes `parent` out of a node it owns
/// alone, through `ValueRef::get_mut`). Go: `valueCtx` (whose key is the
/// value's type here).
pub(crate) struct ValueNode {
    pub(super) parent: Repr,
    /// A filter of the value types at or above this node: the bit of each
    /// (`type_bit`), or all bits when the nearest value node above is out
    /// of reach. A clear bit proves a miss, so a lookup of a type nobody
    /// set costs one hop instead of a walk to the root (Go walks).
    pub(super) types: u64,
    /// A value node further up, for lookups that would otherwise walk past
    /// many values of other types: `None` when no value node is within
    /// reach above.
    pub(super) jump: Option<ValueRef>,
    /// The type bits of the value nodes from this one (included) up to
    /// `jump` (excluded); all bits without a `jump`.
    pub(super) jump_types: u64,
    /// Value nodes above this one, counted up to the first one out of reach.
    pub(super) depth: u32,
    /// The nearest cancel node above, cached so `err()` is one hop.
    pub(super) signal: Option<Arc<CancelNode>>,
}

/// The whole cell: the header first (`repr(C)`), so a pointer to the cell
/// is a pointer to its header.
#[repr(C)]
struct Typed<T> {
    header: Header,
    value: T,
}

/// What the header needs to know about its cell's type.
struct VTable {
    type_name: fn() -> &'static str,
    /// Frees the cell whose header this is. Safety: the last reference is
    /// gone and the cell is a `Typed<T>` of this table's `T`.
    free: unsafe fn(NonNull<Header>),
}

impl<T: Send + Sync + 'static> Typed<T> {
    const VTABLE: &'static VTable = &VTable {
        type_name: std::any::type_name::<T>,
        free: Self::free,
    };

    /// Safety: `node` heads a `Typed<T>` made by `ValueRef::new` and nothing
    /// refers to it any more.
    unsafe fn free(node: NonNull<Header>) {
        // SAFETY: the caller's contract; the pointer came from `Box::leak`
        // of a `Box<Typed<T>>` and keeps that allocation's provenance.
        drop(unsafe { Box::from_raw(node.cast::<Typed<T>>().as_ptr()) });
    }
}

/// A counted, thin (one word) pointer to a value node: what `Arc` would be
/// if its pointee could be a header with a tail of any type behind it.
pub(crate) struct ValueRef(NonNull<Header>);

// SAFETY: a `ValueRef` shares its cell like an `Arc<Typed<T>>` would, and
// `ValueRef::new` requires `T: Send + Sync`; the header's own fields are
// `Send + Sync` (atomics, `Repr`, `Arc`s, a `&'static` table). The cell is
// never mutated through a shared `ValueRef` (only `get_mut`, when unique).
unsafe impl Send for ValueRef {}
// SAFETY: as for `Send`.
unsafe impl Sync for ValueRef {}

impl ValueRef {
    /// A new cell holding `value`, counted once.
    pub(super) fn new<T: Send + Sync + 'static>(node: ValueNode, value: T) -> ValueRef {
        let cell = Box::new(Typed {
            header: Header {
                refs: AtomicUsize::new(1),
                vtable: Typed::<T>::VTABLE,
                type_id: TypeId::of::<T>(),
                node,
            },
            value,
        });
        ValueRef(NonNull::from(Box::leak(cell)).cast())
    }

    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: the cell lives while a reference to it does.
        unsafe { self.0.as_ref() }
    }

    /// The type of the value.
    #[inline]
    pub(super) fn type_id(&self) -> TypeId {
        self.header().type_id
    }

    /// The value, if it is a `T`.
    #[inline]
    pub(super) fn downcast<T: 'static>(&self) -> Option<&T> {
        if self.type_id() != TypeId::of::<T>() {
            return None;
        }
        // SAFETY: the type id was set by `new::<T>` with the cell it heads,
        // so the cell is a `Typed<T>`; `self.0` keeps the provenance of the
        // whole cell (from `Box::leak`); the cell lives as long as `self`
        // and its value is only ever read.
        Some(unsafe { &(*self.0.as_ptr().cast::<Typed<T>>()).value })
    }

    /// The value's type, for `Debug`.
    pub(crate) fn type_name(&self) -> &'static str {
        (self.header().vtable.type_name)()
    }

    /// The node, mutably, if this is the only reference (`Arc::get_mut`).
    pub(super) fn get_mut(&mut self) -> Option<&mut ValueNode> {
        if self.header().refs.load(Ordering::Acquire) != 1 {
            return None;
        }
        // SAFETY: one reference, ours, borrowed mutably: no other thread
        // can reach the cell, and the acquire load saw every release of a
        // reference dropped before (as `Arc::get_mut`).
        Some(unsafe { &mut (*self.0.as_ptr()).node })
    }
}

impl Deref for ValueRef {
    type Target = ValueNode;

    #[inline]
    fn deref(&self) -> &ValueNode {
        &self.header().node
    }
}

impl Clone for ValueRef {
    #[inline]
    fn clone(&self) -> ValueRef {
        // Relaxed, as `Arc::clone`: a new reference is made from an existing
        // one, which already keeps the cell alive.
        let before = self.header().refs.fetch_add(1, Ordering::Relaxed);
        if before > isize::MAX as usize {
            // As `Arc`: only `mem::forget` in a loop gets here.
            std::process::abort();
        }
        ValueRef(self.0)
    }
}

impl Drop for ValueRef {
    #[inline]
    fn drop(&mut self) {
        let header = self.header();
        if header.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other reference's release happens before the free (an
        // acquire load rather than a fence, as `Arc` under sanitizers: loom
        // models it the same).
        header.refs.load(Ordering::Acquire);
        let free = header.vtable.free;
        // SAFETY: that was the last reference; the table is the one `new`
        // set for this cell's type.
        unsafe { free(self.0) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::Repr;
    use super::ValueRef;
    use std::mem::size_of;

    /// Why the cell is ours: the pointer stays one word, so a context stays
    /// two and an optional jump one.
    #[test]
    fn a_value_reference_is_one_word() {
        assert_eq!(size_of::<ValueRef>(), size_of::<usize>());
        assert_eq!(size_of::<Option<ValueRef>>(), size_of::<usize>());
        assert_eq!(size_of::<Repr>(), 2 * size_of::<usize>());
    }

    #[test]
    fn values_with_destructors_and_zero_sized_values_are_dropped_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct Counted(u64);
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::Relaxed);
            }
        }
        struct Unit;
        let chain = Repr::Background.with_value(Counted(1)).with_value(Unit);
        let copy = chain.clone();
        assert!(copy.value::<Unit>().is_some());
        assert_eq!(copy.value::<Counted>().map(|c| c.0), Some(1));
        drop(chain);
        assert_eq!(DROPS.load(Ordering::Relaxed), 0);
        drop(copy);
        assert_eq!(DROPS.load(Ordering::Relaxed), 1);
    }
}
