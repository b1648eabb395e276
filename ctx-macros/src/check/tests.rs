//! Unit tests of the lostcancel check: message trait names, and the probes
//! tuple patterns make.

use syn::parse::Parser;
use syn::Pat;

use super::pattern::{tuple_probes, Elem, Shape, Step};
use super::wrap::{message_trait, DERIVATIONS};
use Step::{Back, Front};

/// Every message trait this step can name exists in `ctx::__private`.
#[test]
fn every_message_trait_exists() {
    let private = include_str!("../../../ctx/src/private.rs");
    let names = DERIVATIONS
        .iter()
        .copied()
        .chain(["signal::notify"])
        .map(Some)
        .chain([None]);
    for name in names {
        for shape in [
            Shape::Wild,
            Shape::Tuple,
            Shape::Rest,
            Shape::Field0,
            Shape::Forget,
        ]
        .into_iter()
        .chain(name.map(|_| Shape::Stmt))
        {
            let ident = message_trait(shape, name);
            assert!(
                private.contains(&format!("        {ident}:\n")),
                "no message trait `{ident}` in ctx/src/private.rs"
            );
        }
    }
}

#[test]
fn message_traits_are_named_after_shape_and_derivation() {
    assert_eq!(
        message_trait(Shape::Tuple, Some("with_cancel")),
        "TupleWithCancel"
    );
    assert_eq!(
        message_trait(Shape::Wild, Some("signal::notify")),
        "WildSignalNotify"
    );
    assert_eq!(message_trait(Shape::Rest, None), "Rest");
}

fn probes(pat: &str) -> Vec<Vec<Step>> {
    let pat = Pat::parse_single.parse_str(pat).unwrap();
    let Pat::Tuple(tuple) = pat else { panic!() };
    tuple_probes(&tuple.elems.iter().map(Elem::of_pat).collect::<Vec<_>>())
        .into_iter()
        .map(|probe| probe.path)
        .collect()
}

fn rest(before: usize, after: usize) -> Step {
    Step::Rest { before, after }
}

#[test]
fn tuple_patterns_check_what_they_drop() {
    assert_eq!(probes("(c, _)"), [[Front(1)]]);
    assert_eq!(probes("(_, g)"), [[Front(0)]]);
    assert_eq!(probes("(c, ..)"), [[rest(1, 0)]]);
    assert_eq!(probes("(.., g)"), [[rest(0, 1)]]);
    assert_eq!(probes("(..)"), [[]]);
    assert_eq!(
        probes("(a, _, .., _)"),
        [[Front(1)], [rest(2, 1)], [Back(0)]]
    );
    assert_eq!(probes("(a, b, c, d, _)"), [[Front(4)]]);
}

#[test]
fn nested_tuple_patterns_check_what_they_drop() {
    assert_eq!(probes("((c, _), n)"), [[Front(0), Front(1)]]);
    assert_eq!(probes("(n, (c, ..))"), [[Front(1), rest(1, 0)]]);
    assert_eq!(
        probes("(.., (_, g))"),
        [vec![rest(0, 1)], vec![Back(0), Front(0)]]
    );
    assert_eq!(probes("((..), _)"), vec![vec![Front(0)], vec![Front(1)]]);
    assert_eq!(probes("(((_, c), d), e)"), [[Front(0), Front(0), Front(0)]]);
}

#[test]
fn a_rest_names_the_element_nearest_to_it_from_an_open_side() {
    assert_eq!(rest(1, 0).element(), Some(Front(1)));
    assert_eq!(rest(0, 1).element(), Some(Back(1)));
    // `(c, .., g)` over a pair covers nothing.
    assert_eq!(rest(1, 1).element(), None);
    assert_eq!(rest(4, 0).element(), None);
    assert!(rest(1, 1).picks(1, 3));
    assert!(!rest(1, 1).picks(1, 2));
    assert!(rest(1, 0).picks(3, 4));
}
